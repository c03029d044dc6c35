"""The config file: merge-writes keep other profiles, the file is private, bad files are clear errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sentry_logger import ConfigurationError
from sentry_logger.config import config_path, load_config, write_profile


def test_merge_write_keeps_other_profiles_and_is_private(tmp_path: Path) -> None:
    path = config_path()
    write_profile("a", {"api_key": "sk_a_" + "1" * 40, "dsn": "http://a", "app": "shop"})
    write_profile("b", {"dsn": "http://b", "environment": "dev"}, make_default=True)
    write_profile("a", {"app": None, "environment": "prod"})
    data = json.loads(path.read_text())
    assert data["default_profile"] == "b"
    assert data["profiles"]["a"] == {"api_key": "sk_a_" + "1" * 40, "dsn": "http://a", "environment": "prod"}
    assert data["profiles"]["b"] == {"dsn": "http://b", "environment": "dev"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    config = load_config()
    assert config.select(None) is not None and config.select(None).dsn == "http://b"  # type: ignore[union-attr]
    assert "sk_a_" not in repr(config)


def test_unknown_top_level_keys_survive_a_merge(tmp_path: Path) -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"default_profile": "x", "profiles": {}, "device": {"token_url": "u"}}))
    write_profile("x", {"dsn": "http://x"})
    assert json.loads(path.read_text())["device"] == {"token_url": "u"}


def test_config_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SENTRY_LOGGER_CONFIG", str(tmp_path / "elsewhere.json"))
    assert config_path() == tmp_path / "elsewhere.json"
    monkeypatch.delenv("SENTRY_LOGGER_CONFIG")
    assert config_path() == Path.home() / ".sentry_logger" / "config.json"


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json", "not valid JSON"), ("[]", "must hold a JSON object"),
     ('{"profiles": {"a": 3}}', "'profiles' must map"), ('{"profiles": {"a": {"dsn": 3}}}', "profiles.a.dsn")],
)
def test_bad_config_file_is_a_clear_error(text: str, problem: str) -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=problem) as err:
        load_config()
    assert str(path) in str(err.value)


def test_missing_file_is_empty() -> None:
    config = load_config()
    assert not config.exists and config.select(None) is None
    assert not os.path.exists(config.path)

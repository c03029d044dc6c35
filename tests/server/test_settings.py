from __future__ import annotations

from pathlib import Path

import pytest

from server.config_doc import render
from server.settings import SETTINGS, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in text, f"{setting.name} missing from docs/configuration.md"
        assert setting.help, f"{setting.name} has no help text"
    assert text == render(), "docs/configuration.md is stale: python -m server.config_doc > docs/configuration.md"


def test_defaults_give_sqlite_under_data_dir_and_a_persisted_secret(tmp_path: Path) -> None:
    first = load_settings(environ={}, env_file=None, data_dir=str(tmp_path))
    assert first.database_url == f"sqlite:///{tmp_path / 'sentry_logger.db'}"
    assert first.dialect == "sqlite"
    second = load_settings(environ={}, env_file=None, data_dir=str(tmp_path))
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first.secret_key not in repr(first)


def test_environment_values_are_cast_and_bad_ones_name_the_setting(tmp_path: Path) -> None:
    s = load_settings(environ={"PORT": "9001", "PRODUCTION": "no", "DATA_DIR": str(tmp_path)}, env_file=None)
    assert s.port == 9001 and s.production is False
    with pytest.raises(ValueError, match="PORT"):
        load_settings(environ={"PORT": "eighty", "DATA_DIR": str(tmp_path)}, env_file=None)


def test_production_requires_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        load_settings(environ={"PRODUCTION": "true", "DATA_DIR": str(tmp_path)}, env_file=None)


def test_local_login_defaults_follow_oidc_and_production(tmp_path: Path) -> None:
    base = {"DATA_DIR": str(tmp_path)}
    assert load_settings(environ=base, env_file=None).local_login_enabled
    assert not load_settings(environ={**base, "OIDC_CLIENT_ID": "x"}, env_file=None).local_login_enabled
    assert not load_settings(environ={**base, "PRODUCTION": "1", "SECRET_KEY": "k"}, env_file=None).local_login_enabled
    assert load_settings(environ={**base, "OIDC_CLIENT_ID": "x", "LOCAL_LOGIN": "true"}, env_file=None).local_login_enabled

"""Configuration resolution: arguments, environment, config file; clear errors without secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sentry_logger
from sentry_logger.config import write_profile
from sentry_logger.options import default_service, key_hint, resolve

from .conftest import API_KEY

FILE_KEY = "sk_staging_" + "cd" * 20


def test_arguments_win_over_environment_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_profile("main", {"api_key": FILE_KEY, "dsn": "http://file:1"})
    monkeypatch.setenv("SENTRY_API_KEY", FILE_KEY)
    monkeypatch.setenv("SENTRY_DSN", "http://env:2")
    config = resolve(API_KEY, "http://arg:3")
    assert (config.api_key, config.dsn) == (API_KEY, "http://arg:3")
    assert config.sources["api_key"] == "argument"


def test_environment_wins_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile("main", {"api_key": FILE_KEY, "dsn": "http://file:1", "environment": "blue"})
    monkeypatch.setenv("SENTRY_API_KEY", API_KEY)
    monkeypatch.setenv("SENTRY_RELEASE", "1.2.3")
    monkeypatch.setenv("SENTRY_SERVICE", "checkout")
    config = resolve()
    assert config.api_key == API_KEY
    assert config.dsn == "http://file:1"  # per setting: the DSN still comes from the file
    assert config.environment == "blue"
    assert (config.release, config.service) == ("1.2.3", "checkout")
    assert config.sources["api_key"] == "environment variable SENTRY_API_KEY"
    assert "config file" in config.sources["dsn"] and "'main'" in config.sources["dsn"]


def test_profile_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile("prod", {"api_key": API_KEY, "dsn": "http://prod:1"})
    write_profile("staging", {"api_key": FILE_KEY, "dsn": "http://staging:1"})
    assert resolve().dsn == "http://prod:1"  # the first profile written became the default
    assert resolve(profile="staging").dsn == "http://staging:1"
    monkeypatch.setenv("SENTRY_PROFILE", "staging")
    assert resolve().dsn == "http://staging:1"
    with pytest.raises(sentry_logger.ConfigurationError, match="profile 'nope' not found.*prod, staging"):
        resolve(profile="nope")


def test_environment_defaults_to_key_label_and_service_to_script() -> None:
    config = resolve(API_KEY, "http://x:1")
    assert config.environment == "test"
    assert config.sources["environment"] == "API key label"
    assert config.service == default_service() != ""


def test_missing_key_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(sentry_logger.ConfigurationError) as err:
        sentry_logger.init(dsn="http://x:1")
    message = str(err.value)
    assert "no API key found" in message
    assert "api_key argument" in message and "SENTRY_API_KEY" in message
    assert str(tmp_path / "home" / "config.json") in message and "(not found)" in message


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("pk_prod_" + "a" * 40, "does not start with 'sk_'"),
        ("sk_Prod_" + "a" * 40, "environment label"),
        ("sk_prod_" + "a" * 39, "39 characters instead of 40"),
        ("sk_prod_" + "A" * 40, "40 lowercase hexadecimal"),
        ("sk_" + "a" * 40, "no '_' between"),
    ],
)
def test_malformed_key_fails_fast_without_echoing_it(monkeypatch: pytest.MonkeyPatch, key: str, problem: str) -> None:
    monkeypatch.setenv("SENTRY_API_KEY", key)
    with pytest.raises(sentry_logger.ConfigurationError) as err:
        sentry_logger.init(dsn="http://x:1")
    message = str(err.value)
    assert problem in message
    assert "environment variable SENTRY_API_KEY" in message
    assert key[8:] not in message  # the secret part never appears


@pytest.mark.parametrize("dsn", ["localhost:8000", "ftp://x", "http://", "not a url"])
def test_dsn_must_be_an_http_url(dsn: str) -> None:
    with pytest.raises(sentry_logger.ConfigurationError, match="not an http\\(s\\) URL"):
        resolve(API_KEY, dsn)


def test_dsn_is_normalised() -> None:
    assert resolve(API_KEY, "https://logs.example.com/").ingest_url == "https://logs.example.com/ingest"
    assert resolve(API_KEY, "http://h:1/prefix/ingest").dsn == "http://h:1/prefix"


def test_secrets_stay_out_of_reprs() -> None:
    config = resolve(API_KEY, "http://x:1")
    assert API_KEY not in repr(config)
    assert key_hint(API_KEY) == "sk_test_abab\N{HORIZONTAL ELLIPSIS}"
    client = sentry_logger.init(API_KEY, "http://127.0.0.1:9", spool=False)
    assert API_KEY not in repr(client.config)


def test_init_lowers_root_level_and_is_not_doubled(tmp_path: Path) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    first = sentry_logger.init(API_KEY, "http://127.0.0.1:9", spool=False)
    second = sentry_logger.init(API_KEY, "http://127.0.0.1:9", spool=False, level=logging.DEBUG)
    ours = [h for h in logging.getLogger().handlers if isinstance(h, sentry_logger.SentryLoggerHandler)]
    assert ours == [second.handler] and first.handler not in ours
    assert logging.getLogger().level == logging.DEBUG
    assert sentry_logger.get_client() is second


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(sentry_logger.ConfigurationError, match="unknown init\\(\\) option\\(s\\) batchsize; valid"):
        sentry_logger.init(API_KEY, "http://127.0.0.1:9", batchsize=10)

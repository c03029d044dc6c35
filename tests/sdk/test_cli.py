"""The sentry-logger command: --version, test (with each failure named), status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sentry_logger
from sentry_logger.cli import main
from sentry_logger.config import write_profile

from .conftest import API_KEY, Sink, free_port


def test_version_from_the_console_script() -> None:
    script = Path(sys.executable).with_name("sentry-logger")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"sentry-logger {sentry_logger.__version__}"


def test_test_command_success(sink: Sink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SENTRY_API_KEY", API_KEY)
    monkeypatch.setenv("SENTRY_DSN", sink.url)
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert "OK: the server accepted the test record" in out
    assert "environment variable SENTRY_API_KEY" in out and API_KEY not in out
    assert sink.logs[0]["message"] == "sentry-logger test record"


def test_test_command_key_rejected(sink: Sink, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--api-key", "sk_test_" + "1" * 40, "--dsn", sink.url]) == 1
    err = capsys.readouterr().err
    assert "FAILED: API key sk_test_1111\N{HORIZONTAL ELLIPSIS} rejected by the server (HTTP 401 invalid_api_key" in err


def test_test_command_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = f"http://127.0.0.1:{free_port()}"
    assert main(["test", "--api-key", API_KEY, "--dsn", dsn]) == 1
    assert f"FAILED: connection refused at {dsn}/ingest" in capsys.readouterr().err


def test_test_command_dns_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--api-key", API_KEY, "--dsn", "http://no-such-host.invalid", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: DNS failure: cannot resolve host 'no-such-host.invalid'" in err or "timeout" in err


def test_test_command_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        dsn = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert main(["test", "--api-key", API_KEY, "--dsn", dsn, "--timeout", "0.3"]) == 1
    assert f"FAILED: timeout waiting for {dsn}/ingest to answer" in capsys.readouterr().err


def test_test_command_without_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test"]) == 2
    assert "no API key found. Looked at:" in capsys.readouterr().err


def test_status_shows_sources_and_key_prefix_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_profile("prod", {"api_key": API_KEY, "dsn": "http://file:8000", "app": "shop"})
    monkeypatch.setenv("SENTRY_DSN", "http://env:8000")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert API_KEY not in out
    assert "api_key:     sk_test_abab\N{HORIZONTAL ELLIPSIS}  [config file" in out and "(profile 'prod')]" in out
    assert "dsn:         http://env:8000  [environment variable SENTRY_DSN]" in out
    assert "profile:     prod" in out and "undelivered batches" in out


def test_status_reports_a_malformed_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SENTRY_API_KEY", "sk_prod_short")
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "INVALID FORMAT" in out and "sk_prod_short" not in out and "not ready:" in out

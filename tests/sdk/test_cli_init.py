"""`sentry-logger init` as a real subprocess against the real server (uvicorn): approval over
HTTP with a signed-in session, denial, expiry, unreachable server, Ctrl-C; the config file's
permissions and merge; then `init()` with no arguments in a child process sends a log that
arrives. (The same flow approved in a real browser: tests/frontend/test_device_link.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import Settings
from tests.conftest import LiveServer, free_port

CLI = str(Path(sys.executable).with_name("sentry-logger"))
CODE_LINE = re.compile(r"enter the code\s+([A-Z]{4}-[A-Z]{4})[\s\S]*\?code=")


@pytest.fixture
def start_server(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        port = free_port()
        server = LiveServer(make_settings(port=port, public_url=f"http://127.0.0.1:{port}",
                                          device_poll_interval_seconds=1, **overrides))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class InitRun:
    """`sentry-logger init ...` running in the background; `code()` waits for the printed user code."""

    def __init__(self, args: list[str], config: Path) -> None:
        self.env = {**os.environ, "SENTRY_LOGGER_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        for name in ("SENTRY_API_KEY", "SENTRY_DSN", "SENTRY_PROFILE"):
            self.env.pop(name, None)
        self.process = subprocess.Popen([CLI, "init", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=self.env)
        self.head = ""

    def code(self) -> str:
        assert self.process.stdout is not None
        while (match := CODE_LINE.search(self.head)) is None:
            line = self.process.stdout.readline()
            assert line, f"init exited early: {self.head}{self.process.stderr.read() if self.process.stderr else ''}"
            self.head += line
        return match.group(1)

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, self.head + out, err

    def close(self) -> None:
        """Stop it if still running (a failed test) and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def init_cli() -> Iterator[Callable[[list[str], Path], InitRun]]:
    """Start `sentry-logger init` runs; any still running at the end of the test are killed."""
    runs: list[InitRun] = []

    def start(args: list[str], config: Path) -> InitRun:
        runs.append(InitRun(args, config))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


@contextlib.contextmanager
def signed_in(server: LiveServer) -> Iterator[httpx.Client]:
    """A browser-like client after the local developer sign-in, with the session's CSRF token."""
    with server.http(headers={"origin": server.url}) as http:
        assert http.post("/auth/local", data={"next": "/"}).status_code == 303
        http.headers["x-csrf-token"] = http.get("/api/me").raise_for_status().json()["csrf_token"]
        yield http


def test_init_approved_over_http_then_init_without_arguments_sends_a_log(
    start_server: Callable[..., LiveServer], init_cli: Callable[..., InitRun], tmp_path: Path
) -> None:
    server = start_server()
    config = tmp_path / "home" / ".sentry_logger" / "config.json"
    config.parent.mkdir(parents=True, mode=0o755)
    config.write_text(json.dumps({"default_profile": "other", "keep": 1, "profiles": {
        "other": {"api_key": "sk_prod_" + "a" * 40, "dsn": "https://elsewhere.example"}}}))
    run = init_cli(["--app-name", "Shop API", "--environment", "staging", "--dsn", server.url, "--no-browser"], config)
    code = run.code()
    assert f"{server.url}/sdk/link" in run.head and f"?code={code}" in run.head

    with signed_in(server) as http:
        info = http.get("/sdk/device/lookup", params={"user_code": code}).raise_for_status().json()
        assert (info["app_name"], info["environment"]) == ("Shop API", "staging")
        done = http.post("/sdk/device/complete", json={"user_code": code}).raise_for_status().json()
        rc, out, err = run.finish()
        assert rc == 0, err
        assert "sentry-logger test" in out and "init() with no arguments" in out
        data = json.loads(config.read_text())
        profile = data["profiles"]["shop-api-staging"]
        assert profile["api_key"] not in out + err
        assert profile == {"api_key": profile["api_key"], "dsn": server.url, "app": "Shop API", "environment": "staging"}
        assert data["default_profile"] == "shop-api-staging" and data["keep"] == 1
        assert data["profiles"]["other"]["dsn"] == "https://elsewhere.example"  # merged, not overwritten
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700

        env = {**run.env, "SENTRY_LOGGER_SPOOL": "0"}
        test_run = subprocess.run([CLI, "test"], check=False, capture_output=True, text=True, env=env, timeout=60)
        assert test_run.returncode == 0, test_run.stderr
        marker = f"hello from init {uuid.uuid4().hex}"
        child = ("import logging, sentry_logger\nsentry_logger.init()\n"
                 f"logging.getLogger('shop').warning({marker!r})\nsentry_logger.shutdown(timeout=10)\n")
        subprocess.run([sys.executable, "-c", child], check=True, env=env, timeout=60)
        logs = http.get(f"/api/apps/{done['app']['id']}/logs", params={"q": marker}).raise_for_status().json()["logs"]
        assert [(r["message"], r["environment"]) for r in logs] == [(marker, "staging")]


def test_init_denied(
    start_server: Callable[..., LiveServer], init_cli: Callable[..., InitRun], tmp_path: Path
) -> None:
    server = start_server()
    config = tmp_path / "config.json"
    run = init_cli(["--app-name", "shop", "--dsn", server.url, "--no-browser"], config)
    with signed_in(server) as http:
        http.post("/sdk/device/deny", json={"user_code": run.code()}).raise_for_status()
    rc, _, err = run.finish()
    assert rc == 4 and "denied in the browser. Nothing was saved." in err
    assert not config.exists()


def test_init_expired(
    start_server: Callable[..., LiveServer], init_cli: Callable[..., InitRun], tmp_path: Path
) -> None:
    server = start_server(device_code_lifetime_seconds=0)
    config = tmp_path / "config.json"
    run = init_cli(["--app-name", "shop", "--dsn", server.url, "--no-browser"], config)
    run.code()
    rc, _, err = run.finish()
    assert rc == 5 and "expired" in err and "sentry-logger init" in err
    assert not config.exists()


def test_init_server_unreachable(tmp_path: Path) -> None:
    dsn = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([CLI, "init", "--app-name", "shop", "--dsn", dsn, "--no-browser"],
                            check=False, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SENTRY_LOGGER_CONFIG": str(tmp_path / "c.json")})
    assert result.returncode == 3 and f"cannot reach the server at {dsn}" in result.stderr


def test_init_without_a_server_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"} | {"SENTRY_LOGGER_CONFIG": str(tmp_path / "c.json")}
    result = subprocess.run([CLI, "init", "--app-name", "shop"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and "no server URL: pass --dsn" in result.stderr


def test_init_ctrl_c(
    start_server: Callable[..., LiveServer], init_cli: Callable[..., InitRun], tmp_path: Path
) -> None:
    server = start_server()
    config = tmp_path / "config.json"
    run = init_cli(["--app-name", "shop", "--dsn", server.url, "--no-browser"], config)
    run.code()
    time.sleep(0.2)  # let it enter the wait (not a timing assertion: any moment of the wait is fine)
    run.process.send_signal(signal.SIGINT)
    rc, _, err = run.finish()
    assert rc == 130 and "Cancelled. Nothing was saved." in err
    assert not config.exists()

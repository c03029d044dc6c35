"""Fixtures for the SDK tests: an isolated SDK environment and a recording ingest sink.

The sink is a real HTTP server (uvicorn on a free port, in a thread) speaking
the ingest protocol: it de-duplicates on ``batch_id`` like the real server,
records every request it receives, can be told to answer with a given status
(500, 429 + Retry-After, 401, 413...) a number of times, and can be stopped and
started again on the same port. End-to-end tests use the real server from
tests/conftest.py instead; both are real transports, no mocks.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sentry_logger

from tests.conftest import ThreadedServer, free_port  # noqa: F401 - free_port is re-exported for the SDK tests

API_KEY = "sk_test_" + "ab" * 20
SDK_ENV_VARS = (
    "SENTRY_API_KEY", "SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE", "SENTRY_SERVICE", "SENTRY_PROFILE",
    "SENTRY_LOGGER_CONFIG", "SENTRY_LOGGER_SPOOL", "SENTRY_LOGGER_SPOOL_DIR", "SENTRY_LOGGER_DEBUG",
)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SDK end-to-end tests run on SQLite only (the server's own tests cover PostgreSQL)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def sdk_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No SENTRY_* from the outside, config and spool under tmp_path, SDK shut down afterwards."""
    for name in SDK_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENTRY_LOGGER_CONFIG", str(tmp_path / "home" / "config.json"))
    monkeypatch.setenv("SENTRY_LOGGER_SPOOL_DIR", str(tmp_path / "spool"))
    root = logging.getLogger()
    level = root.level
    yield tmp_path
    sentry_logger.shutdown(timeout=1.0)
    for handler in list(root.handlers):
        if isinstance(handler, sentry_logger.SentryLoggerHandler):
            root.removeHandler(handler)
    root.setLevel(level)


@dataclass
class Received:
    """One request as the sink saw it."""

    headers: dict[str, str]
    payload: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)
    body: bytes = b""  # as sent, gunzipped


class Sink:
    """An ingest endpoint that records requests and can inject faults (see module docstring)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.faults: deque[tuple[int, dict[str, str]]] = deque()
        self.committed: dict[str, list[dict[str, Any]]] = {}
        self.reject_indexes: set[int] = set()
        self._lock = threading.Lock()
        self.server = ThreadedServer(self, lifespan="off", log_config=None, ws="none")

    @property
    def url(self) -> str:
        return self.server.url

    def fail(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        for _ in range(times):
            self.faults.append((status, headers or {}))

    @property
    def logs(self) -> list[dict[str, Any]]:
        """Every committed record, in commit order (each batch once)."""
        with self._lock:
            return [log for batch in self.committed.values() for log in batch]

    def wait_for(self, predicate: Callable[[Sink], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"sink condition not met; got {len(self.logs)} logs, "
                                     f"{len(self.requests)} requests")
            time.sleep(0.02)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        payload = json.loads(body) if body else {}
        status, answer, extra = self._answer(scope, headers, payload)
        with self._lock:
            self.requests.append(Received(headers, payload, status, body=body))
        raw = json.dumps(answer).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        head += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": raw})

    def _answer(self, scope: dict[str, Any], headers: dict[str, str],
                payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if scope["path"] != "/ingest" or scope["method"] != "POST":
            return 404, {"error": {"code": "not_found", "message": "no such endpoint"}}, {}
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            return fault[0], {"error": {"code": f"injected_{fault[0]}", "message": "injected by the test"}}, fault[1]
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, {"error": {"code": "invalid_api_key", "message": "unknown or revoked API key"}}, {}
        batch_id = payload["batch_id"]
        logs = payload["logs"]
        with self._lock:
            if batch_id in self.committed:
                return 202, {"accepted": len(logs), "rejected": 0, "batch_id": batch_id, "duplicate": True}, {}
            kept = [log for i, log in enumerate(logs) if i not in self.reject_indexes]
            self.committed[batch_id] = kept
        return 202, {"accepted": len(kept), "rejected": len(logs) - len(kept), "batch_id": batch_id,
                     "duplicate": False}, {}


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    server.server.start()
    try:
        yield server
    finally:
        server.server.stop()


FAST = {"flush_interval": 0.05, "batch_linger": 0.01, "backoff": (0.02, 0.2), "shutdown_timeout": 3.0}


@pytest.fixture
def init_sdk(sink: Sink) -> Callable[..., sentry_logger.Client]:
    """``sentry_logger.init`` pointed at the sink with test-friendly (fast) intervals."""

    def init(**kwargs: Any) -> sentry_logger.Client:
        options = {"api_key": API_KEY, "dsn": sink.url, "service": "tests", **FAST, **kwargs}
        return sentry_logger.init(**options)

    return init


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> Any:
    """Run ``code`` in a child interpreter (same venv) and return the CompletedProcess."""
    import os
    import subprocess

    full_env = {k: v for k, v in os.environ.items() if k not in SDK_ENV_VARS}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)

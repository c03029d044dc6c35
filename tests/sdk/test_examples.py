"""examples/fastapi_app run as a user would (uvicorn in its own process) against the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import SDK_ENV_VARS, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"


def test_fastapi_example_against_a_running_server(live_server: Any, sdk_env: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SDK_ENV_VARS}
    env.update(SENTRY_API_KEY=live_server.api_key, SENTRY_DSN=live_server.url,
               SENTRY_LOGGER_SPOOL_DIR=str(sdk_env / "spool"), SENTRY_RELEASE="example-1")
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port), "--log-level", "warning"],
        cwd=EXAMPLE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert app.poll() is None and time.monotonic() < deadline, "the example did not start"
                time.sleep(0.1)
        assert httpx.get(f"{base}/").json() == {"hello": "world"}
        assert httpx.get(f"{base}/items/42", headers={"X-Request-ID": "abc-123"}).status_code == 200
        assert httpx.get(f"{base}/items/7").status_code == 404
        assert httpx.get(f"{base}/fail").status_code == 500
    finally:
        # uvicorn shuts down gracefully, then re-raises SIGTERM (so atexit never runs):
        # the middleware's lifespan-shutdown flush is what delivers the last records.
        app.send_signal(signal.SIGTERM)
        _, stderr = app.communicate(timeout=30)
    assert app.returncode in (0, -signal.SIGTERM), stderr
    assert "sentry-logger: " not in stderr  # nothing undelivered, no warnings

    logs = [e for e in live_server.logs() if e["service"] == "fastapi-example"]
    assert {e["release"] for e in logs} == {"example-1"}
    by_message = {e["message"]: e for e in logs}
    assert "index visited" in by_message
    viewed = [e for e in logs if e["message"] == "item viewed"]
    assert [e["attributes"]["item_id"] for e in viewed] == [42, 7]
    assert viewed[0]["request_id"] == "abc-123"
    assert by_message["unknown item requested"]["level"] == "WARNING"

    access = [e for e in logs if e["logger"] == "http.access"]
    assert [(e["attributes"]["method"], e["attributes"]["route"], e["attributes"]["status_code"])
            for e in access] == [("GET", "/", 200), ("GET", "/items/{item_id}", 200),
                                 ("GET", "/items/{item_id}", 404), ("GET", "/fail", 500)]
    assert all(e["attributes"]["duration_ms"] >= 0 for e in access)
    assert access[1]["request_id"] == "abc-123"
    assert not [e for e in access if e["attributes"]["path"] == "/health"]
    failure = access[3]
    assert failure["level"] == "ERROR"
    assert failure["exception"]["type"] == "RuntimeError"
    assert "demo failure" in failure["exception"]["traceback"]

"""The real SDK against the real server (uvicorn on a free port, SQLite), end to end."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_logger
from sentry_logger.context import request_id_var

from .conftest import FAST, Sink, run_python

log = logging.getLogger("app.e2e")


class FaultInjector:
    """ASGI wrapper in front of the real app: answers POST /ingest with injected faults.

    ``before``: statuses answered instead of calling the app; ``after``: the app
    handles (and commits) the request, then the client sees this status instead
    (a lost response).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.before: list[tuple[int, dict[str, str]]] = []
        self.after: list[int] = []
        self.seen: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/ingest":
            await self.app(scope, receive, send)
            return
        if self.before:
            status, headers = self.before.pop(0)
            while (await receive()).get("more_body"):
                pass
            self.seen.append(status)
            await _answer(send, status, headers)
            return
        if self.after:
            status = self.after.pop(0)

            async def swallow(message: dict[str, Any]) -> None:
                pass

            await self.app(scope, receive, swallow)
            self.seen.append(status)
            await _answer(send, status, {})
            return
        self.seen.append(202)
        await self.app(scope, receive, send)


async def _answer(send: Any, status: int, headers: dict[str, str]) -> None:
    body = json.dumps({"error": {"code": "injected", "message": "injected by the test"}}).encode()
    raw = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def faults(live_server: Any) -> Iterator[FaultInjector]:
    """Restart the live server with a FaultInjector in front of the real app (same port, same DB)."""
    from server.app import create_app

    server = live_server.server
    server.stop()
    injector = FaultInjector(create_app(server.settings))
    wrapped = type(server)(server.settings, app=injector)
    wrapped.start()
    live_server.server = wrapped
    try:
        yield injector
    finally:
        sentry_logger.shutdown(5)
        wrapped.stop()
        server._server = server._thread = None


@pytest.fixture(autouse=True)
def shutdown_before_the_server_stops(live_server: Any) -> Iterator[None]:
    """Stop the SDK while the server still runs (the server's own records, captured in
    this process because it shares the root logger, are delivered instead of waited for)."""
    yield
    sentry_logger.shutdown(5)


def init_live(live: Any, **kwargs: Any) -> sentry_logger.Client:
    options = {"api_key": live.api_key, "dsn": live.url, "service": "e2e", **FAST, **kwargs}
    return sentry_logger.init(**options)


def app_logs(live: Any) -> list[dict[str, Any]]:
    """Records of the test's loggers (the in-process server's own records are captured too)."""
    return [entry for entry in live.logs() if entry["logger"] in ("app.e2e", "child")]


def messages(live: Any) -> list[str]:
    return [entry["message"] for entry in app_logs(live)]


def test_records_arrive_with_all_metadata(live_server: Any) -> None:
    init_live(live_server, environment="staging", release="2.0.1")
    token = request_id_var.set("req-77")
    try:
        log.warning("payment %s failed", 42, extra={"order_id": 42, "cart": {"items": [1, 2]}, "ok": False})
    finally:
        request_id_var.reset(token)
    try:
        raise ValueError("bad card")
    except ValueError:
        log.exception("charge crashed")
    assert sentry_logger.flush(10)
    first, second = app_logs(live_server)
    assert first["message"] == "payment 42 failed"
    assert first["level"] == "WARNING"
    assert first["service"] == "e2e" and first["logger"] == "app.e2e"
    assert (first["environment"], first["release"]) == ("staging", "2.0.1")
    assert first["host"] and first["process_id"] == os.getpid()
    assert first["thread_name"] == threading.current_thread().name
    assert first["attributes"] == {"order_id": 42, "cart": {"items": [1, 2]}, "ok": False}
    assert first["request_id"] == "req-77"
    assert second["level"] == "ERROR"
    assert second["exception"]["type"] == "ValueError"
    assert second["exception"]["value"] == "bad card"
    assert second["exception"]["traceback"].startswith("Traceback (most recent call last):")
    assert 'raise ValueError("bad card")' in second["exception"]["traceback"]


def test_server_stopped_then_restarted_every_record_arrives_once(live_server: Any) -> None:
    client = init_live(live_server, batch_size=10)
    log.info("before")
    assert sentry_logger.flush(10)
    live_server.server.stop()
    for i in range(45):
        log.info("while down %d", i)
    Sink.wait_for(None, lambda _: client.stats()["spooled"] >= 45)  # type: ignore[arg-type]
    live_server.server.start()
    assert sentry_logger.flush(20)
    assert messages(live_server) == ["before"] + [f"while down {i}" for i in range(45)]


def test_500_then_200_loses_nothing_and_a_lost_response_is_not_stored_twice(
    live_server: Any, faults: FaultInjector
) -> None:
    faults.before = [(500, {}), (502, {}), (503, {"Retry-After": "0"})]
    init_live(live_server)
    for i in range(5):
        log.info("flaky %d", i)
    assert sentry_logger.flush(15)
    faults.after = [500]  # committed by the server, but the SDK sees a 500 and retries
    log.info("committed but unanswered")
    assert sentry_logger.flush(15)
    assert faults.seen == [500, 502, 503, 202, 500, 202]
    assert messages(live_server) == [f"flaky {i}" for i in range(5)] + ["committed but unanswered"]


def test_429_retry_after_is_honoured(live_server: Any, faults: FaultInjector) -> None:
    faults.before = [(429, {"Retry-After": "1"})]
    client = init_live(live_server, backoff=(0.01, 0.02))
    log.info("slowed down")
    assert sentry_logger.flush(15)
    assert faults.seen == [429, 202]
    assert client.stats()["retried"] == 1
    assert messages(live_server) == ["slowed down"]


def test_a_child_interpreter_that_logs_and_exits_is_flushed(live_server: Any, sdk_env: Path) -> None:
    code = (
        "import logging, sentry_logger\n"
        "sentry_logger.init(service='child-e2e')\n"
        "for i in range(3):\n"
        "    logging.getLogger('child').error('child says %d', i)\n"
    )
    env = {"SENTRY_API_KEY": live_server.api_key, "SENTRY_DSN": live_server.url,
           "SENTRY_LOGGER_SPOOL_DIR": str(sdk_env / "spool")}
    result = run_python(code, env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    logs = app_logs(live_server)
    assert [e["message"] for e in logs] == [f"child says {i}" for i in range(3)]
    assert {e["service"] for e in logs} == {"child-e2e"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork(live_server: Any) -> None:
    init_live(live_server, flush_interval=60)
    log.info("parent")
    pid = os.fork()
    if pid == 0:
        try:
            log.info("child")
            sentry_logger.shutdown(10)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert sentry_logger.flush(10)
    got = sorted((e["message"], e["process_id"]) for e in app_logs(live_server))
    assert got == [("child", pid), ("parent", os.getpid())]


def test_twenty_threads(live_server: Any) -> None:
    init_live(live_server)

    def work(n: int) -> None:
        for i in range(100):
            log.info("t%d-%d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sentry_logger.flush(30)
    got = messages(live_server)
    assert sorted(got) == sorted(f"t{n}-{i}" for n in range(20) for i in range(100))


def test_overflow_is_counted_and_reported_to_the_server(live_server: Any) -> None:
    client = init_live(live_server, spool=False, max_queue_records=20, batch_size=5)
    live_server.server.stop()
    for i in range(200):
        log.info("flood %d", i)
    dropped_app = client.stats()["dropped"]["queue_full"]
    assert dropped_app > 0
    live_server.server.start()
    assert sentry_logger.flush(15)
    log.info("carries the last report")
    assert sentry_logger.flush(15)
    # the in-process server's own records (stop/start) may have been dropped too
    dropped = client.stats()["dropped"]["queue_full"]
    assert 200 - dropped + 1 <= len(app_logs(live_server)) == 200 - dropped_app + 1
    path = live_server.server.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        reports = [json.loads(r[0]) for r in db.execute("SELECT report FROM sdk_reports")]
    assert sum(r.get("dropped", {}).get("queue_full", 0) for r in reports) == dropped


def test_bad_key_one_clear_message_and_the_app_keeps_running(
    live_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sentry_logger.init("sk_live_" + "9" * 40, live_server.url, **FAST)
    for i in range(3):
        log.error("never stored %d", i)
        sentry_logger.flush(5)
    err = capsys.readouterr().err
    assert err.count("sentry-logger: the server rejected the API key (HTTP 401 invalid_api_key") == 1
    assert "9999999999" not in err
    assert client.stats()["dropped"]["auth_failed"] == 3
    assert app_logs(live_server) == []


def test_records_clipped_by_the_sdk_are_accepted_by_the_server(live_server: Any) -> None:
    client = init_live(live_server)
    try:
        raise ValueError("v" * 20_000)
    except ValueError:
        log.exception("é" * 40_000, extra={"blob": "b" * 40_000, "n": 1, "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}})
    assert sentry_logger.flush(10)
    assert client.stats()["rejected"] == 0
    (record,) = app_logs(live_server)
    assert record["attributes"]["n"] == 1 and record["exception"]["type"] == "ValueError"

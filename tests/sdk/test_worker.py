"""The worker against a real HTTP sink: batching, retries, backoff, spool, overflow, exit, fork, threads."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sentry_logger

from .conftest import API_KEY, FAST, Sink, run_python

log = logging.getLogger("app.worker_tests")


def messages(sink: Sink) -> list[str]:
    return [entry["message"] for entry in sink.logs]


def test_batches_are_gzip_json_with_bearer_key_and_uuid_batch_ids(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(batch_size=100, max_batch_records=100, flush_interval=60)
    for i in range(250):
        log.info("record %d", i)
    assert sentry_logger.flush(10)
    assert messages(sink) == [f"record {i}" for i in range(250)]
    for request in sink.requests:
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert re.fullmatch(r"[0-9a-f]{32}", request.payload["batch_id"])
        assert request.payload["sdk"] == {"name": "sentry-logger", "version": sentry_logger.__version__}
    assert len({r.payload["batch_id"] for r in sink.requests}) == len(sink.requests) >= 3
    assert max(len(r.payload["logs"]) for r in sink.requests) == 100


def test_records_are_sent_after_the_flush_interval_without_a_flush(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(flush_interval=0.05)
    log.warning("lonely record")
    sink.wait_for(lambda s: len(s.logs) == 1)
    assert sink.logs[0]["level"] == "WARNING"


def test_server_errors_are_retried_with_the_same_batch_id_and_reported(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    sink.fail(500, times=3)
    client = init_sdk()
    for i in range(5):
        log.info("retry me %d", i)
    assert sentry_logger.flush(10)
    assert messages(sink) == [f"retry me {i}" for i in range(5)]
    ids = [r.payload["batch_id"] for r in sink.requests]
    assert [r.status for r in sink.requests] == [500, 500, 500, 202] and len(set(ids)) == 1
    assert client.stats()["retried"] == 3
    log.info("next batch carries the report")
    assert sentry_logger.flush(10)
    assert sink.requests[-1].payload["client_report"]["retried"] == 3


def test_retry_after_of_a_429_is_honoured(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    sink.fail(429, headers={"Retry-After": "1"})
    init_sdk(backoff=(0.01, 0.05))
    log.info("rate limited")
    assert sentry_logger.flush(10)
    first, second = sink.requests[0], sink.requests[1]
    assert (first.status, second.status) == (429, 202)
    assert second.payload["batch_id"] == first.payload["batch_id"]
    assert second.at - first.at >= 0.95  # backoff alone would retry after ~10 ms


def test_outage_spools_then_replays_everything_once_in_order(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(batch_size=10)
    log.info("before outage")
    assert sentry_logger.flush(10)
    sink.server.stop()
    for i in range(35):
        log.info("during outage %d", i)
    assert client.spool is not None
    spool = client.spool.directory
    sink.wait_for(lambda s: client.stats()["spooled"] >= 35)
    assert list(spool.iterdir())
    assert not sentry_logger.flush(0.3)  # nothing can be delivered yet
    sink.server.start()
    assert sentry_logger.flush(15)
    assert messages(sink) == ["before outage"] + [f"during outage {i}" for i in range(35)]
    assert not list(spool.iterdir())


def test_without_spool_records_wait_in_memory_during_an_outage(
    sink: Sink, init_sdk: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client = init_sdk(spool=False)
    sink.server.stop()
    for i in range(20):
        log.info("kept %d", i)
        if i == 10:
            sink.wait_for(lambda s: client.worker.last_problem is not None)
    sink.server.start()
    assert sentry_logger.flush(15)
    assert messages(sink) == [f"kept {i}" for i in range(20)]
    err = capsys.readouterr().err
    assert err.count("sentry-logger: cannot deliver logs") == 1  # one warning per outage, not per retry
    assert (f"cannot deliver logs (connection refused at {sink.url}/ingest (is the server running and listening "
            "there?)); retrying with backoff, keeping up to 10000 records in memory. Run `sentry-logger test` "
            "to diagnose.") in err
    assert "sentry-logger: delivering logs again (the problem was: connection refused" in err


def test_buffer_overflow_is_counted_and_reported(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(spool=False, max_queue_records=50, batch_size=10)
    sink.server.stop()
    for i in range(300):
        log.info("flood %d", i)
    dropped = client.stats()["dropped"]["queue_full"]
    assert dropped > 0
    sink.server.start()
    assert sentry_logger.flush(15)
    assert len(sink.logs) + dropped == 300
    reported = sum(r.payload.get("client_report", {}).get("dropped", {}).get("queue_full", 0)
                   for r in sink.requests if r.status == 202)
    log.info("carry the rest of the report")
    assert sentry_logger.flush(15)
    reported = sum(r.payload.get("client_report", {}).get("dropped", {}).get("queue_full", 0)
                   for r in sink.requests if r.status == 202)
    assert reported == dropped


def test_spool_bound_is_enforced_and_counted(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(batch_size=5, spool_max_bytes=1)
    sink.server.stop()
    log.info("head batch, kept in memory")
    sink.wait_for(lambda s: client.worker.last_problem is not None)
    for i in range(30):
        log.info("no room %d", i)
    sink.wait_for(lambda s: client.stats()["dropped"].get("spool_full", 0) == 30)
    assert client.spool is not None and client.spool.size_bytes == 0
    sink.server.start()
    assert sentry_logger.flush(10)
    assert messages(sink) == ["head batch, kept in memory"]


def test_bad_key_gives_one_clear_message_and_the_app_keeps_running(
    sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sentry_logger.init("sk_test_" + "00" * 20, sink.url, **FAST, batch_size=2)
    for i in range(10):
        log.error("rejected %d", i)
        sentry_logger.flush(2)
    err = capsys.readouterr().err
    assert err.count("rejected the API key") == 1
    assert "sk_test_0000000000" not in err
    assert client.stats()["dropped"]["auth_failed"] == 10
    assert not client.spool or not list(client.spool.directory.iterdir())


def test_refused_batches_are_dropped_counted_and_explained(
    sink: Sink, init_sdk: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client = init_sdk()
    sink.fail(400, times=2)
    log.info("first")
    sentry_logger.flush(5)
    log.info("second")
    sentry_logger.flush(5)
    log.info("third")
    assert sentry_logger.flush(5)
    assert messages(sink) == ["third"]
    assert client.stats()["dropped"]["rejected_by_server"] == 2
    assert capsys.readouterr().err.count("the server refused a batch (HTTP 400 injected_400") == 1


def test_a_413_splits_the_batch_and_a_single_record_413_is_dropped(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(flush_interval=60)
    sink.fail(413)
    for i in range(10):
        log.info("split %d", i)
    assert sentry_logger.flush(10)
    assert messages(sink) == [f"split {i}" for i in range(10)]
    assert {len(r.payload["logs"]) for r in sink.requests} == {10, 5}
    sink.fail(413)
    log.info("alone and too big")
    assert sentry_logger.flush(10)
    assert client.stats()["dropped"]["too_large"] == 1


def test_records_rejected_one_by_one_are_counted_not_retried(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(flush_interval=60)
    sink.reject_indexes = {1}
    for i in range(3):
        log.info("r %d", i)
    assert sentry_logger.flush(10)
    assert len(sink.requests) == 1 and client.stats()["rejected"] == 1


def test_twenty_threads_logging_at_once_lose_nothing(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(batch_size=100)

    def work(n: int) -> None:
        for i in range(200):
            log.info("thread %d record %d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sentry_logger.flush(30)
    got = messages(sink)
    assert len(got) == len(set(got)) == 4000
    for n in range(20):  # per thread, in order
        mine = [m for m in got if m.startswith(f"thread {n} ")]
        assert mine == [f"thread {n} record {i}" for i in range(200)]


def test_the_sdk_never_captures_its_own_logs(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(debug=True)
    logging.getLogger("sentry_logger").warning("internal")
    logging.getLogger("sentry_logger.worker").error("internal too")
    log.info("app record")
    assert sentry_logger.flush(5)
    log.info("after the debug lines about the first batch")
    assert sentry_logger.flush(5)
    assert messages(sink) == ["app record", "after the debug lines about the first batch"]


CHILD = """
import logging, sys, sentry_logger
sentry_logger.init({key!r}, {dsn!r}, service="child", flush_interval=60, backoff=(0.05, 0.1))
for i in range({count}):
    logging.getLogger("child").info("child record %d", i)
{tail}
"""


def test_a_child_interpreter_is_flushed_at_exit(sink: Sink, sdk_env: Path) -> None:
    code = CHILD.format(key=API_KEY, dsn=sink.url, count=7, tail="print('done')")
    result = run_python(code, {"SENTRY_LOGGER_SPOOL_DIR": str(sdk_env / "spool")})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert messages(sink) == [f"child record {i}" for i in range(7)]
    assert all(entry["service"] == "child" for entry in sink.logs)


def test_exit_during_an_outage_spools_and_the_next_process_replays(sink: Sink, sdk_env: Path) -> None:
    sink.server.stop()
    env = {"SENTRY_LOGGER_SPOOL_DIR": str(sdk_env / "spool")}
    result = run_python(CHILD.format(key=API_KEY, dsn=sink.url, count=12, tail=""), env)
    assert result.returncode == 0
    assert re.fullmatch(r"sentry-logger: 12 log records not delivered at exit \(connection refused at .*\): "
                        r"spooled to .*; they will be sent by the next process using this key\n",
                        result.stderr.split("sentry-logger: cannot deliver")[0] or result.stderr.splitlines()[-1] + "\n")
    assert list((sdk_env / "spool").rglob("*.batch"))
    sink.server.start()
    result = run_python(CHILD.format(key=API_KEY, dsn=sink.url, count=1, tail=""), env)
    assert result.returncode == 0, result.stderr
    assert messages(sink) == [f"child record {i}" for i in range(12)] + ["child record 0"]
    assert not list((sdk_env / "spool").rglob("*.batch*"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_worker_and_buffer(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(flush_interval=60)
    log.info("parent before fork")
    pid = os.fork()
    if pid == 0:  # the child: must not resend the parent's buffered record
        try:
            log.info("from the child")
            sentry_logger.shutdown(10)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    log.info("parent after fork")
    assert sentry_logger.flush(10)
    got = {(e["message"], e["process_id"]) for e in sink.logs}
    assert got == {("parent before fork", os.getpid()), ("from the child", pid), ("parent after fork", os.getpid())}
    assert len(sink.logs) == 3


def test_a_multiprocessing_fork_child_is_flushed(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    import multiprocessing

    init_sdk(flush_interval=60)
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_log_in_child)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    sink.wait_for(lambda s: messages(s) == ["from a multiprocessing child"])


def _log_in_child() -> None:
    log.info("from a multiprocessing child")


KILLED = """
import logging, os, signal, time, sentry_logger
client = sentry_logger.init({key!r}, {dsn!r}, flush_interval=0.05, backoff=(0.05, 0.1))
logging.getLogger("child").info("logged before a crash")
deadline = time.monotonic() + 20
while client.stats()["spooled"] < 1 and time.monotonic() < deadline:
    time.sleep(0.02)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_batch_claimed_by_a_crashed_process_is_replayed(
    sink: Sink, init_sdk: Callable[..., Any], sdk_env: Path
) -> None:
    sink.server.stop()
    result = run_python(KILLED.format(key=API_KEY, dsn=sink.url),
                        {"SENTRY_LOGGER_SPOOL_DIR": str(sdk_env / "spool")})
    assert result.returncode == -9
    assert list((sdk_env / "spool").rglob("*.claim"))  # still claimed by the dead process
    sink.server.start()
    init_sdk()  # no record logged: the leftover spool is replayed anyway
    sink.wait_for(lambda s: messages(s) == ["logged before a crash"])
    assert not list((sdk_env / "spool").rglob("*.batch*"))


def test_the_workers_http_requests_stay_out_of_the_apps_logs(
    sink: Sink, init_sdk: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    init_sdk()
    log.info("one")
    assert sentry_logger.flush(5)
    assert [r.getMessage() for r in caplog.records] == ["one"]
    logging.getLogger("httpx").info("the app's own httpx line")  # still logged
    assert caplog.records[-1].getMessage() == "the app's own httpx line"


def test_without_thread_info_in_records_the_sdk_still_works(
    sink: Sink, init_sdk: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "logThreads", False)
    init_sdk()
    log.info("no thread info")
    assert sentry_logger.flush(5)
    log.info("second")
    assert sentry_logger.flush(5)
    assert messages(sink) == ["no thread info", "second"]


@pytest.mark.parametrize("spool", [True, False])
def test_the_worker_sleeps_while_backing_off(sink: Sink, init_sdk: Callable[..., Any], spool: bool) -> None:
    client = init_sdk(spool=spool, batch_size=5, backoff=(1.0, 1.0))
    sink.server.stop()
    for i in range(50):
        log.info("waiting %d", i)
    sink.wait_for(lambda s: client.worker.last_problem is not None)
    before = client.worker.steps
    threading.Event().wait(0.5)
    assert client.worker.steps - before < 50  # a busy loop would make hundreds of thousands
    sink.server.start()
    assert sentry_logger.flush(10)
    assert messages(sink) == [f"waiting {i}" for i in range(50)]

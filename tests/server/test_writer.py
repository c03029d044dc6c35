from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from server.db import DB
from server.migrate import apply_migrations
from server.settings import Settings
from server.writer import Batch, KeyRevoked, LogWriter, WriterOverloaded
from tests.conftest import LiveApp, free_port, ingest_key

ROOT = Path(__file__).resolve().parents[2]
# A valid log row of app 1 (LOG_COLUMNS, id None), as validate_record makes them.
ROW = (None, 1, 1_000_000, 1_000_000, 20, "INFO", "", "", "m", None, None, "", "", "", None, "", "", "")


@contextlib.asynccontextmanager
async def _migrated(url: str) -> AsyncIterator[DB]:
    """A migrated database with the active API key 1 (of app 1)."""
    db = DB(url)
    await db.connect()
    try:
        await apply_migrations(db)
        assert await ingest_key(db) == 1  # the batches below are of key 1
        yield db
    finally:
        await db.disconnect()


def _logs(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"timestamp": time.time(), "level": "INFO", "message": f"{prefix} {i}"} for i in range(n)]


def test_concurrent_ingest_requests_all_commit_without_lock_errors(live_server: LiveApp) -> None:
    def send(worker: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            for batch in range(10):
                r = http.post("/ingest", json={"api_key": live_server.api_key, "logs": _logs(f"w{worker}b{batch}", 50)})
                codes.append(r.status_code)
        return codes

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = [c for result in pool.map(send, range(16)) for c in result]
    assert codes == [202] * 160
    stored = live_server.logs()
    assert len(stored) == 16 * 10 * 50
    ids = [log["id"] for log in stored]
    assert len(set(ids)) == len(ids)


def test_queue_bound_refuses_with_overloaded_and_then_commits(settings: Settings) -> None:
    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            writer = LogWriter(db, max_queue_records=10, max_commit_records=100, batch_retention_hours=1)
            first = writer.submit(Batch(1, 1, [ROW] * 8))
            with pytest.raises(WriterOverloaded):
                writer.submit(Batch(1, 1, [ROW] * 5))
            assert writer.stats["overloaded"] == 1
            await writer.start()
            assert await first == (8, 0, False)
            await writer.stop()
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 8

    asyncio.run(go())


def test_pipelined_commits_answer_in_order_and_fail_alone(settings: Settings) -> None:
    """Commits overlap (SQLite runs two in flight): listeners still see ids in increasing
    order, every request gets its answer, and a failing commit fails only its own batches."""
    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            writer = LogWriter(db, max_queue_records=100_000, max_commit_records=10, batch_retention_hours=1)
            seen: list[list[int]] = []

            async def listener(rows: Sequence[tuple[Any, ...]]) -> None:
                seen.append([row[0] for row in rows])
                await asyncio.sleep(0)

            writer.listeners.append(listener)
            await writer.start()
            bad = (*ROW[:8], None, *ROW[9:])  # message NOT NULL: the database refuses this commit
            futures = []
            for i in range(60):
                futures.append(writer.submit(Batch(1, 1, [bad if i == 17 else ROW] * 10)))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            results = await asyncio.gather(*futures, return_exceptions=True)
            await writer.stop()
            failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
            assert failed == [17]
            assert all(r == (10, 0, False) for i, r in enumerate(results) if i != 17)
            ids = [i for commit in seen for i in commit]
            assert ids == sorted(ids) and len(ids) == len(set(ids)) == 590
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 590
            assert writer.stats["failed_commits"] == 1

    asyncio.run(go())


def test_one_batch_id_twice_in_one_commit_is_stored_once(settings: Settings) -> None:
    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            writer = LogWriter(db, max_queue_records=1000, max_commit_records=1000, batch_retention_hours=1)
            first = writer.submit(Batch(1, 1, [ROW] * 3, 1, "retry-me"))
            other = writer.submit(Batch(1, 1, [ROW] * 2, 0, "another"))
            again = writer.submit(Batch(1, 1, [ROW] * 3, 1, "retry-me"))
            await writer.start()  # all three are queued: one commit
            assert await first == (3, 1, False)
            assert await other == (2, 0, False)
            assert await again == (3, 1, True)
            later = writer.submit(Batch(1, 1, [ROW] * 3, 1, "retry-me"))
            assert await later == (3, 1, True)
            await writer.stop()
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 5
            assert writer.stats["commits"] == 2

    asyncio.run(go())


def test_two_writers_retrying_the_same_batch_ids_store_each_once(settings: Settings) -> None:
    """Two writers (as two server processes: a pool each) commit the same batch ids at the same
    time, as an SDK retrying against another process would: each batch is stored once, every
    request gets an answer, and no commit deadlocks (the batch ids are recorded after the
    lock is taken, in the same statement)."""
    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            other = DB(settings.database_url)
            await other.connect()
            writers = [LogWriter(d, max_queue_records=100_000, max_commit_records=300, batch_retention_hours=1)
                       for d in (db, other)]
            for writer in writers:
                await writer.start()
            try:
                futures = [writers[(i + k) % 2].submit(Batch(1, 1, [ROW] * 10, 0, f"b{i}"))
                           for i in range(60) for k in range(2)]
                results = await asyncio.gather(*futures)
            finally:
                for writer in writers:
                    await writer.stop()
                await other.disconnect()
            for i in range(60):
                pair = results[2 * i: 2 * i + 2]
                assert sorted(r[2] for r in pair) == [False, True] and all(r[:2] == (10, 0) for r in pair), (i, pair)
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 600
            assert sum(w.stats["failed_commits"] for w in writers) == 0

    asyncio.run(go())


def test_sqlite_wal_starts_over_under_steady_ingest(tmp_path: Path) -> None:
    """The once-a-second checkpoint never catches up with a writer that never pauses; the
    writer finishes it before its next commit so the WAL file starts over instead of growing
    (the header's checkpoint sequence number counts the restarts)."""
    path = tmp_path / "wal.db"

    def restarts() -> int:
        return int.from_bytes((tmp_path / "wal.db-wal").read_bytes()[12:16], "big")

    async def go() -> None:
        async with _migrated(f"sqlite:///{path}") as db:
            writer = LogWriter(db, max_queue_records=100_000, max_commit_records=2000, batch_retention_hours=1)
            await writer.start()
            row = (None, 1, 1_000_000, 1_000_000, 20, "INFO", "api", "", "a message of some words", None, None,
                   "", "", "", None, "", "", "")
            before = restarts()
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:  # never let the writer pause
                await asyncio.gather(*(writer.submit(Batch(1, 1, [row] * 100)) for _ in range(10)))
            after = restarts()
            await writer.stop()
        assert after - before >= 2

    asyncio.run(go())


def test_a_202_survives_a_crash_of_the_server(settings: Settings, tmp_path: Path) -> None:
    """kill -9 right after the 202: the records are in the database."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": "s",
           "PORT": str(port), "DASHBOARD": "false"}
    created = subprocess.run([sys.executable, "-m", "server", "apps", "create", "--owner", "k@example.com", "--name", "crash"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    key = next(w for w in created.stdout.split() if w.startswith("sk_"))
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "server.asgi:app", "--port", str(port), "--log-level", "warning"],
                            env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        r = httpx.post(f"http://127.0.0.1:{port}/ingest", json={"api_key": key, "logs": _logs("durable", 500)}, timeout=30)
        assert r.status_code == 202
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    async def count() -> int:
        db = DB(settings.database_url)
        await db.connect()
        try:
            return int(await db.fetch_val("SELECT COUNT(*) FROM logs WHERE message LIKE :p", {"p": "durable %"}))
        finally:
            await db.disconnect()

    assert asyncio.run(count()) == 500


def test_a_batch_whose_key_was_revoked_before_its_commit_is_refused_and_not_recorded(settings: Settings) -> None:
    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            second = await ingest_key(db)
            await db.execute("UPDATE api_keys SET revoked_at = 1 WHERE id = :id", {"id": second})
            writer = LogWriter(db, max_queue_records=1000, max_commit_records=1000, batch_retention_hours=1)
            kept = writer.submit(Batch(1, 1, [ROW] * 3, 0, "a"))
            refused = writer.submit(Batch(1, second, [ROW] * 4, 0, "b", {"sdk": "x"}))
            await writer.start()  # both queued: one commit
            assert await kept == (3, 0, False)
            with pytest.raises(KeyRevoked):
                await refused
            # Its batch id was not recorded: sent again with an active key, it is stored.
            assert await writer.submit(Batch(1, 1, [ROW] * 4, 0, "b")) == (4, 0, False)
            await writer.stop()
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 7
            assert await db.fetch_val("SELECT COUNT(*) FROM sdk_reports") == 0
            assert writer.stats["revoked"] == 1

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite's writer has no server connection to lose
def test_postgres_writer_reconnects_after_losing_its_connection(settings: Settings) -> None:
    """PostgreSQL: the writer's thread has a connection of its own; when the database ends it,
    the commit in flight fails (its requests answer 503) and the next one connects again."""

    async def go() -> None:
        async with _migrated(settings.database_url) as db:
            writer = LogWriter(db, max_queue_records=1000, max_commit_records=1000, batch_retention_hours=1)
            await writer.start()
            assert await writer.submit(Batch(1, 1, [ROW] * 2)) == (2, 0, False)
            ended = await db.fetch_val(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'sentry-logger writer'"
            )
            assert ended == 1
            results = []
            for _ in range(2):
                try:
                    results.append(await writer.submit(Batch(1, 1, [ROW] * 3)))
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:  # the connection ended
                    results.append(type(exc).__name__)
            await writer.stop()
            assert results[-1] == (3, 0, False)
            assert await db.fetch_val("SELECT COUNT(*) FROM logs") == 2 + 3 * sum(r == (3, 0, False) for r in results)

    asyncio.run(go())


def test_postgres_writer_answers_with_the_error_when_the_database_is_unreachable() -> None:
    """No PostgreSQL where the writer connects: each commit's requests get the connection error
    (the request answers 503), none waits for ever, and the writer stops cleanly."""
    async def go() -> None:
        writer = LogWriter(DB(f"postgresql://postgres@127.0.0.1:{free_port()}/test"),
                           max_queue_records=1000, max_commit_records=1000, batch_retention_hours=1)
        await writer.start()
        for _ in range(2):
            with pytest.raises(OSError):
                await asyncio.wait_for(writer.submit(Batch(1, 1, [ROW])), 15)
        await asyncio.wait_for(writer.stop(), 15)
        assert writer.stats["failed_commits"] == 2

    asyncio.run(go())

"""The one log writer: group commit of many ingest requests' batches in one transaction.

Requests hand their validated rows to `LogWriter.submit` and wait for the commit; the
writer drains everything queued, writes it with the driver's bulk path (SQLite multi-row
INSERTs on its own thread, see `server._sqlite_writer`; asyncpg `copy_records_to_table`, see
`server._pg_writer`) and answers all of them at once. Log ids
are allocated inside the serialised write transaction (BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), so ids are committed in increasing order across processes;
the live tail's resume depends on that.

Bound: at most `max_queue_records` records wait (plus those of the commits in progress: at
most two of `max_commit_records`); `submit` raises `WriterOverloaded` past it (the request
answers 503 with Retry-After and nothing of it is stored).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server._pg_writer import commit_postgres
from server._sqlite_writer import SqliteWriterConnection
from server.db import DB
from server.health_rollup import MinuteDelta
from server.health_store import LatencyCache
from server.security import now_s

__all__ = ["Batch", "CommitListener", "LogWriter", "WriterOverloaded", "WriterStopped"]

log = logging.getLogger("server.writer")
CommitListener = Callable[[list[tuple[Any, ...]]], Awaitable[None]]
_Committed = tuple[list["Batch"], list[tuple[Any, ...]]]
_ADVISORY_KEY = 7_301_955_002


class WriterOverloaded(Exception):
    pass


class WriterStopped(Exception):
    pass


class _CommitFailed(Exception):
    def __init__(self, batches: list[Batch], error: Exception) -> None:
        super().__init__(str(error))
        self.batches = batches
        self.error = error


@dataclass
class Batch:
    app_id: int
    key_id: int
    rows: list[tuple[Any, ...]]
    rejected: int = 0
    batch_id: str | None = None
    report: dict[str, Any] | None = None
    # The rows' health aggregates, computed by the request (server.health_rollup.rollup_minutes) so the
    # writer, the one serial step of ingest, only merges them; None: the writer computes them.
    health: MinuteDelta | None = None
    # PostgreSQL: the rows' keyword data (server._pg_writer.prepare_words), likewise off the writer.
    words: tuple[list[str], set[str]] | None = None
    future: asyncio.Future[tuple[int, int, bool]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # result: (accepted, rejected, duplicate)


class LogWriter:
    def __init__(
        self, db: DB, *, max_queue_records: int, max_commit_records: int, batch_retention_hours: int,
        health_aggregation: bool = True,
    ) -> None:
        self.db = db
        # Health aggregates (server.health_rollup) are upserted in the same transaction as the rows.
        self.health_aggregation = health_aggregation
        self._latency_cache = LatencyCache()
        self.max_queue_records = max_queue_records
        self.max_commit_records = max_commit_records
        self.batch_retention_s = batch_retention_hours * 3600
        self.listeners: list[CommitListener] = []
        self._queue: collections.deque[Batch] = collections.deque()
        self._queued_records = 0
        # submit() appends on the event loop; the SQLite writer thread takes (see _run).
        self._queue_lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sqlite_conn: SqliteWriterConnection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._last_cleanup = 0.0
        self.stats = {"commits": 0, "records": 0, "overloaded": 0, "duplicates": 0, "failed_commits": 0}

    @property
    def queued_records(self) -> int:
        return self._queued_records

    async def start(self) -> None:
        if self.db.dialect == "sqlite":
            # Its own connection and thread: queries on the shared connection never queue behind a commit.
            self._sqlite_conn = SqliteWriterConnection(self.db.sqlite_path)
            await asyncio.get_running_loop().run_in_executor(self._sqlite_conn.executor, self._sqlite_conn.open)
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")
        self._task = asyncio.create_task(self._run(), name="log-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._sqlite_conn is not None:
            writer = self._sqlite_conn
            await asyncio.get_running_loop().run_in_executor(writer.executor, writer.close)
            writer.executor.shutdown()
            self._sqlite_conn = None

    def submit(self, batch: Batch) -> asyncio.Future[tuple[int, int, bool]]:
        if self._stopping:
            raise WriterStopped("the server is shutting down")
        n = len(batch.rows)
        with self._queue_lock:
            if self._queued_records and self._queued_records + n > self.max_queue_records:
                self.stats["overloaded"] += 1
                raise WriterOverloaded(f"{self._queued_records} records are waiting to be written")
            self._queue.append(batch)
            self._queued_records += n
        self._wakeup.set()
        return batch.future

    def _take(self) -> list[Batch]:
        taken: list[Batch] = []
        count = 0
        with self._queue_lock:
            while self._queue and (not taken or count + len(self._queue[0].rows) <= self.max_commit_records):
                batch = self._queue.popleft()
                taken.append(batch)
                count += len(batch.rows)
            self._queued_records -= count
        return taken

    async def _run(self) -> None:
        # SQLite: up to two commits in flight on the writer thread, each taking what is queued
        # when it starts, so the next commit begins the moment one ends instead of after a round
        # trip through the event loop, which may be busy validating a request (the writer sat
        # idle 17% of the time). PostgreSQL: one, since two connections could take the advisory
        # lock out of order and the live tail needs ids committed in increasing order.
        depth = 2 if self.db.dialect == "sqlite" else 1
        inflight: collections.deque[asyncio.Future[_Committed]] = collections.deque()
        while True:
            while self._queue and len(inflight) < depth:
                inflight.append(asyncio.ensure_future(self._commit()))
            if not inflight:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            oldest = inflight[0]
            if len(inflight) < depth and not oldest.done():
                # Wake for whichever comes first: the commit's end, or work for the next commit.
                self._wakeup.clear()
                waiter = asyncio.ensure_future(self._wakeup.wait())
                await asyncio.wait((oldest, waiter), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not oldest.done():
                    continue
            inflight.popleft()
            await self._finish(oldest)

    async def _finish(self, done: asyncio.Future[_Committed]) -> None:
        """Answer the requests of one commit, then hand its rows to the listeners (in commit order)."""
        try:
            batches, committed = await done
        except _CommitFailed as failed:  # the database failed: every waiting request gets the error
            self.stats["failed_commits"] += 1
            log.error("log commit failed: %s", failed.error)
            for batch in failed.batches:
                if not batch.future.done():
                    batch.future.set_exception(failed.error)
            return
        for batch in batches:
            if not batch.future.done():
                batch.future.set_result((len(batch.rows), batch.rejected, False))
        if committed:
            for listener in self.listeners:
                try:
                    await listener(committed)
                except Exception:
                    log.exception("commit listener failed")
        await self._maybe_cleanup()

    async def _commit(self) -> _Committed:
        """Take what is queued and commit it: (the batches taken, the rows written with their ids)."""
        if self.db.dialect == "sqlite":
            return await self._commit_sqlite()
        batches = self._take()
        try:
            return batches, await self._commit_postgres(batches)
        except Exception as exc:
            raise _CommitFailed(batches, exc) from exc

    def _mark_duplicate(self, batch: Batch, stored: tuple[int, int] | None) -> None:
        self.stats["duplicates"] += 1
        accepted, rejected = stored if stored else (0, 0)
        batch.future.set_result((accepted, rejected, True))

    def _assign_ids(self, fresh: list[Batch], first_id: int) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        next_id = first_id
        for batch in fresh:
            numbered = [(next_id + i, *row[1:]) for i, row in enumerate(batch.rows)]
            next_id += len(numbered)
            batch.rows = numbered
            rows.extend(numbered)
        return rows

    async def _commit_sqlite(self) -> _Committed:
        writer = self._sqlite_conn
        assert writer is not None, "start() opens the SQLite writer"
        health = self.health_aggregation

        def take_and_commit() -> tuple[list[Batch], list[tuple[Any, ...]], dict[int, tuple[int, int]]]:
            batches = self._take()  # on the writer thread, as the commit starts
            if not batches:
                return batches, [], {}
            specs = [(b.app_id, b.key_id, b.batch_id, len(b.rows), b.rejected, b.rows, b.report, b.health) for b in batches]
            try:
                rows, duplicates = writer.commit(specs, now_s(), health)
            except Exception as exc:
                raise _CommitFailed(batches, exc) from exc
            return batches, rows, duplicates

        batches, rows, duplicates = await asyncio.get_running_loop().run_in_executor(writer.executor, take_and_commit)
        for index, stored in duplicates.items():
            self._mark_duplicate(batches[index], stored)
        if batches:
            self.stats["commits"] += 1
            self.stats["records"] += len(rows)
        return batches, rows

    async def _commit_postgres(self, batches: list[Batch]) -> list[tuple[Any, ...]]:
        async with self.db.raw() as conn:
            rows = await commit_postgres(
                conn, batches, now_s(), lock_key=_ADVISORY_KEY, assign_ids=self._assign_ids,
                mark_duplicate=self._mark_duplicate,
                latency_cache=self._latency_cache if self.health_aggregation else None,
            )
        self.stats["commits"] += 1
        self.stats["records"] += len(rows)
        return rows

    async def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL into the database once a second, off the writer's thread."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            try:
                await self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:
                log.warning("WAL checkpoint failed: %s", exc)

    async def _maybe_cleanup(self) -> None:
        """Forget batch ids older than the retention window, at most once a minute."""
        if time.monotonic() - self._last_cleanup < 60:
            return
        self._last_cleanup = time.monotonic()
        cutoff = now_s() - self.batch_retention_s
        try:
            await self.db.execute("DELETE FROM ingest_batches WHERE committed_at < :cutoff", {"cutoff": cutoff})
        except Exception as exc:
            log.warning("could not clean up old batch ids: %s", exc)

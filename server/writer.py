"""The one log writer: group commit of many ingest requests' batches in one transaction.

Requests hand their validated rows to `LogWriter.submit` and wait for the commit; the
writer drains everything queued, writes it with the driver's bulk path (SQLite multi-row
INSERTs on its own thread, see `server._sqlite_writer`; asyncpg `copy_records_to_table`, see
`server._pg_writer`) and answers all of them at once. Log ids
are allocated inside the serialised write transaction (BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), so ids are committed in increasing order across processes;
the live tail's resume depends on that.

Health aggregates: each commit's roll-ups wait in memory and are written about once a second
(`health_flush_s`) or when `flush_health` is awaited, inside a commit (server.health_pending).

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
from itertools import chain
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from server._pg_writer import commit_postgres
from server._sqlite_writer import SqliteCommit, SqliteWriterConnection
from server.db import DB
from server.health_pending import PendingHealth, compact
from server.health_rollup import MinuteDelta
from server.health_store import LatencyCache
from server.security import now_s

__all__ = ["Batch", "CommitListener", "LogWriter", "WriterOverloaded", "WriterStopped"]

log = logging.getLogger("server.writer")
CommitListener = Callable[[Sequence[tuple[Any, ...]]], Awaitable[None]]
# (batches, the commit (server._sqlite_writer.SqliteCommit) or the error if it failed, flush waiters)
_SqliteResult = tuple[list["Batch"], "SqliteCommit | Exception", list["asyncio.Future[None]"]]
_ADVISORY_KEY = 7_301_955_002


class WriterOverloaded(Exception):
    pass


class WriterStopped(Exception):
    pass


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
    words: list[str] | None = None
    future: asyncio.Future[tuple[int, int, bool]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # result: (accepted, rejected, duplicate)


class CommittedRows(Sequence[tuple[Any, ...]]):
    """A SQLite commit's rows with their ids, numbered on first use, on the event loop: most
    commits have no listener that reads them (the hub skips apps nobody tails), and numbering
    them on the writer's thread, or here for every commit, cost 8-10% of that thread's time."""

    def __init__(self, first_id: int, parts: list[list[tuple[Any, ...]]]) -> None:
        self._first_id = first_id
        self._parts = parts
        self._len = sum(map(len, parts))
        self._rows: list[tuple[Any, ...]] | None = None

    def _numbered(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            first = self._first_id
            self._rows = [(first + k, *row[1:]) for k, row in enumerate(chain.from_iterable(self._parts))]
        return self._rows

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        return self._numbered()[index]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._numbered())


class LogWriter:
    def __init__(
        self, db: DB, *, max_queue_records: int, max_commit_records: int, batch_retention_hours: int,
        health_aggregation: bool = True, health_flush_s: float = 1.0,
    ) -> None:
        self.db = db
        # Health aggregates (server.health_rollup): kept in memory, written by a commit now and then.
        self.health_aggregation = health_aggregation
        self.health_flush_s = health_flush_s
        self._latency_cache = LatencyCache()
        self._pending = PendingHealth()  # PostgreSQL's; SQLite's belongs to its writer connection
        self._flush_waiters: list[asyncio.Future[None]] = []
        self.max_queue_records = max_queue_records
        self.max_commit_records = max_commit_records
        self.batch_retention_s = batch_retention_hours * 3600
        self.listeners: list[CommitListener] = []
        self._queue: collections.deque[Batch] = collections.deque()
        self._queued_records = 0
        # submit() appends on the event loop; the SQLite writer thread takes (see _sqlite_thread).
        self._has_work = threading.Condition(threading.Lock())
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._results: asyncio.Queue[_SqliteResult | None] = asyncio.Queue()  # bound: _undelivered
        self._undelivered = threading.Semaphore(2)
        self._stopping = False
        self._sqlite_conn: SqliteWriterConnection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._last_cleanup = 0.0
        self.stats = {"commits": 0, "records": 0, "overloaded": 0, "duplicates": 0, "failed_commits": 0}

    @property
    def queued_records(self) -> int:
        return self._queued_records

    @property
    def pending_health(self) -> PendingHealth:
        """The roll-ups of commits not yet in the health tables (the SQLite writer thread's own)."""
        return self._sqlite_conn.pending if self._sqlite_conn is not None else self._pending

    async def start(self) -> None:
        if self.db.dialect == "sqlite":
            # Its own connection and thread: queries on the shared connection never queue behind a commit.
            self._sqlite_conn = SqliteWriterConnection(self.db.sqlite_path)
            await asyncio.to_thread(self._sqlite_conn.open)
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")
            self._thread = threading.Thread(
                target=self._sqlite_thread, args=(asyncio.get_running_loop(),), name="sqlite-log-writer", daemon=True
            )
            self._thread.start()
            self._task = asyncio.create_task(self._deliver_sqlite(), name="log-writer")
        else:
            self._task = asyncio.create_task(self._run_postgres(), name="log-writer")

    async def stop(self) -> None:
        """Commit what is queued, write the pending health aggregates, then stop."""
        if self._task is not None and not self._stopping:
            try:
                await self.flush_health()
            except Exception as exc:  # the next start reads the rows back (server.health_pending)
                log.warning("could not write the pending health aggregates: %s", exc)
        self._stopping = True
        self._wakeup.set()
        with self._has_work:
            self._has_work.notify_all()
        if self._task is not None:
            await self._task
            self._task = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._sqlite_conn is not None:
            await asyncio.to_thread(self._sqlite_conn.close)
            self._sqlite_conn = None

    def submit(self, batch: Batch) -> asyncio.Future[tuple[int, int, bool]]:
        if self._stopping:
            raise WriterStopped("the server is shutting down")
        n = len(batch.rows)
        with self._has_work:
            if self._queued_records and self._queued_records + n > self.max_queue_records:
                self.stats["overloaded"] += 1
                raise WriterOverloaded(f"{self._queued_records} records are waiting to be written")
            self._queue.append(batch)
            self._queued_records += n
            self._has_work.notify()
        self._wakeup.set()
        return batch.future

    async def flush_health(self) -> None:
        """Return once the health tables count every log committed before the call: the
        writer's next commit (an empty one when nothing is queued) flushes. Raises the
        database's error if that commit failed."""
        if not self.health_aggregation or self._task is None or self._stopping:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._has_work:
            self._flush_waiters.append(waiter)
            self._has_work.notify()
        self._wakeup.set()
        await waiter

    def _flush_due(self, last_flush: float) -> float:
        """Seconds until the next timed flush (<= 0: now)."""
        return last_flush + self.health_flush_s - time.monotonic()

    def _take(self) -> list[Batch]:
        taken: list[Batch] = []
        count = 0
        with self._has_work:
            while self._queue and (not taken or count + len(self._queue[0].rows) <= self.max_commit_records):
                batch = self._queue.popleft()
                taken.append(batch)
                count += len(batch.rows)
            self._queued_records -= count
        return taken

    def _sqlite_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """SQLite: commit back to back on this thread, taking what is queued the moment the
        previous commit ends; the event loop, often busy validating requests, only answers them
        afterwards (when the loop started each commit, the writer sat idle 17% of the time)."""
        writer = self._sqlite_conn
        assert writer is not None, "start() opens the SQLite writer"
        last_flush = time.monotonic()
        while True:
            with self._has_work:
                while not self._queue and not self._flush_waiters and not self._stopping:
                    wait = self._flush_due(last_flush) if writer.pending else None
                    if wait is not None and wait <= 0:
                        break  # idle with roll-ups waiting: an empty commit writes them
                    self._has_work.wait(wait)
                if self._stopping and not self._queue and not self._flush_waiters:
                    break  # everything queued is committed
                waiters, self._flush_waiters = self._flush_waiters, []
            self._undelivered.acquire()  # bound: results of two commits wait for the loop, at most
            batches = self._take()
            specs = [(b.app_id, b.key_id, b.batch_id, len(b.rows), b.rejected, b.rows, b.report, b.health) for b in batches]
            flush = bool(waiters) or self._flush_due(last_flush) <= 0
            result: _SqliteResult
            try:
                result = (batches, writer.commit(specs, now_s(), self.health_aggregation, flush), waiters)
                if flush:
                    last_flush = time.monotonic()
            except Exception as exc:
                result = (batches, exc, waiters)
            loop.call_soon_threadsafe(self._results.put_nowait, result)
        loop.call_soon_threadsafe(self._results.put_nowait, None)

    async def _deliver_sqlite(self) -> None:
        while (result := await self._results.get()) is not None:
            self._undelivered.release()
            batches, outcome, waiters = result
            if isinstance(outcome, Exception):
                await self._finish(batches, [], outcome, waiters)
                continue
            first_id, fresh, duplicates, deltas = outcome
            for index, stored in duplicates.items():
                self._mark_duplicate(batches[index], stored)
            await self._finish(batches, CommittedRows(first_id, [batches[i].rows for i in fresh]), None, waiters)
            if deltas is not None:
                compact(deltas)

    async def _run_postgres(self) -> None:
        last_flush = time.monotonic()
        while True:
            if not self._queue and not self._flush_waiters:
                if self._stopping:
                    return
                wait = self._flush_due(last_flush) if self._pending else None
                if wait is None or wait > 0:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), wait)
                    continue
            waiters, self._flush_waiters = self._flush_waiters, []
            batches = self._take()
            flush = bool(waiters) or self._flush_due(last_flush) <= 0
            try:
                rows, error = await self._commit_postgres(batches, flush), None
                if flush:
                    last_flush = time.monotonic()
            except Exception as exc:
                rows, error = [], exc
            await self._finish(batches, rows, error, waiters)

    async def _finish(
        self, batches: list[Batch], committed: Sequence[tuple[Any, ...]], error: Exception | None,
        waiters: list[asyncio.Future[None]],
    ) -> None:
        """Answer the requests of one commit, then hand its rows to the listeners (in commit order)."""
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        if error is not None:  # the database failed: every waiting request gets the error
            self.stats["failed_commits"] += 1
            log.error("log commit failed: %s", error)
            for batch in batches:
                if not batch.future.done():
                    batch.future.set_exception(error)
            return
        self.stats["commits"] += bool(batches)  # not the empty ones that only write health aggregates
        self.stats["records"] += len(committed)
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

    def _mark_duplicate(self, batch: Batch, stored: tuple[int, int] | None) -> None:
        self.stats["duplicates"] += 1
        accepted, rejected = stored if stored else (0, 0)
        batch.future.set_result((accepted, rejected, True))

    async def _commit_postgres(self, batches: list[Batch], flush: bool) -> list[tuple[Any, ...]]:
        async with self.db.raw() as conn:
            rows, own, covered = await commit_postgres(
                conn, batches, now_s(), lock_key=_ADVISORY_KEY,
                mark_duplicate=self._mark_duplicate,
                pending=self._pending if self.health_aggregation else None,
                latency_cache=self._latency_cache, flush=flush,
            )
        if covered is not None:
            self._pending.forget(covered)
        if own is not None and (covered is None or own[1] > covered):
            self._pending.add(*own)
            if own[2] is not None:
                asyncio.get_running_loop().call_soon(compact, own[2])  # while the next commit waits for the database
        return rows

    async def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL into the database once a second, off the writer's thread.

        Under steady ingest this checkpoint never catches up (the writer appends while it
        copies), and SQLite starts the WAL file over only once everything in it is copied: the
        WAL grew by ~100 MB a second and every COMMIT wrote to fresh file blocks (a third of
        the writer's time). So the writer then copies what is left itself before its next
        commit (what was written meanwhile, not a second's worth), and the WAL starts over."""
        writer = self._sqlite_conn
        while not self._stopping:
            await asyncio.sleep(1.0)
            try:
                await self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:
                log.warning("WAL checkpoint failed: %s", exc)
                continue
            if writer is not None:
                writer.finish_checkpoint = True

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

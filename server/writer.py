"""The one log writer: group commit of many ingest requests' batches in one transaction.

Requests hand their validated rows to `LogWriter.submit` and wait for the commit; the
writer drains everything queued, writes it with the driver's bulk path (SQLite multi-row
INSERTs, see `server._sqlite_writer`; a binary COPY, see `server._pg_writer`) and answers all
of them at once. Either runs on a thread of its own, committing back to back; the event loop
answers the requests and calls the listeners. Log ids are allocated inside the serialised
write transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so ids are
committed in increasing order across processes; the live tail's resume depends on that.

SQLite: the health aggregator's passes (server.health_aggregate) are written by this writer
too, inside its next commit (`apply_health`): one writer per database.

PostgreSQL: that thread runs an event loop of its own with a connection of its own (not
the pool's): on the server's loop, busy validating requests, each of a commit's five round
trips waited for the loop to read the reply, and commits took twice as long as the
database's own work on them (docs/benchmarks.md, "The PostgreSQL writer's thread and cached
API keys").

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
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import asyncpg

from server._pg_writer import CopyBatch, commit_postgres
from server._sqlite_writer import HealthJob, SqliteWriterConnection
from server.db import DB
from server.fulltext import WordSet
from server.health_rollup import HealthDelta
from server.native import word_set
from server.security import now_s

__all__ = ["Batch", "CommitListener", "KeyRevoked", "LogWriter", "WriterOverloaded", "WriterStopped"]

log = logging.getLogger("server.writer")
CommitListener = Callable[[Sequence[tuple[Any, ...]]], Awaitable[None]]
# A commit: the first new id (the fresh batches' rows have the ids from it on, in order), the
# fresh batches' indexes, the duplicates' first answers by batch index, which health jobs
# were applied, and the indexes of batches whose API key is no longer active (SQLite:
# server._sqlite_writer.SqliteWriterConnection.commit).
_Commit = tuple[int, list[int], Mapping[int, tuple[int, int] | None], list[bool], list[int]]
# (batches, the commit or the error if it failed, health jobs and their futures)
_Result = tuple[list["Batch"], "_Commit | Exception", list[tuple[HealthJob, "asyncio.Future[bool]"]]]
_ADVISORY_KEY = 7_301_955_002


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when installed (as the server's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class WriterOverloaded(Exception):
    pass


class WriterStopped(Exception):
    pass


class KeyRevoked(Exception):
    """The batch's API key was revoked (or deleted) before its commit: nothing of it was
    stored (server.ingest_keys)."""


@dataclass
class Batch:
    app_id: int
    key_id: int
    rows: list[tuple[Any, ...]]
    rejected: int = 0
    batch_id: str | None = None
    report: dict[str, Any] | None = None
    # Request records' (index in rows, route, duration_us, duration_bin), for the health aggregates.
    requests: list[tuple[int, str, int, int]] | None = None
    # PostgreSQL: the rows' COPY data (request fields, messages for the word block, ts range:
    # server._pg_writer.prepare_copy), made by the request so the writer, the one serial step
    # of ingest, need not.
    copy: CopyBatch | None = None
    future: asyncio.Future[tuple[int, int, bool]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # result: (accepted, rejected, duplicate)


class CommittedRows(Sequence[tuple[Any, ...]]):
    """A commit's rows with their ids, numbered on first use, on the event loop: most
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
    ) -> None:
        self.db = db
        self._health_jobs: list[tuple[HealthJob, asyncio.Future[bool]]] = []  # SQLite, at most one pass at a time
        self.max_queue_records = max_queue_records
        self.max_commit_records = max_commit_records
        self.batch_retention_s = batch_retention_hours * 3600
        self.listeners: list[CommitListener] = []
        self._queue: collections.deque[Batch] = collections.deque()
        # PostgreSQL: the words of the queued batches' messages by app, for the word blocks (_take).
        self._pending_words: dict[int, WordSet] = {}
        self._queued_records = 0
        # submit() appends on the event loop; the writer's thread takes (see _sqlite_thread, _postgres_thread).
        self._has_work = threading.Condition(threading.Lock())
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._results: asyncio.Queue[_Result | None] = asyncio.Queue()  # bound: _undelivered
        self._undelivered = threading.Semaphore(2)
        self._stopping = False
        self._sqlite_conn: SqliteWriterConnection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        # SQLite: run once a second just after the WAL starts over (the health aggregator's tick).
        self.after_checkpoint: Callable[[], Awaitable[None]] | None = None
        self._last_cleanup = 0.0
        self.stats = {"commits": 0, "records": 0, "overloaded": 0, "duplicates": 0, "failed_commits": 0, "revoked": 0}

    @property
    def queued_records(self) -> int:
        return self._queued_records

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.db.dialect == "sqlite":
            # Its own connection and thread: queries on the shared connection never queue behind a commit.
            self._sqlite_conn = SqliteWriterConnection(self.db.sqlite_path)
            await asyncio.to_thread(self._sqlite_conn.open)
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")
            self._thread = threading.Thread(target=self._sqlite_thread, args=(loop,), name="sqlite-log-writer", daemon=True)
        else:
            self._thread = threading.Thread(target=self._postgres_thread, args=(loop,), name="postgres-log-writer", daemon=True)
        self._thread.start()
        self._task = asyncio.create_task(self._deliver(), name="log-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
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
            copy = batch.copy
            if copy is not None and copy.messages:
                # PostgreSQL: the words go into the app's set for the next word block, here on the
                # event loop, instead of a set per batch and their union on the writer's thread.
                pending = self._pending_words.get(batch.app_id)
                if pending is None:
                    pending = self._pending_words[batch.app_id] = word_set()
                pending.add_texts(copy.messages)
                copy.messages = None
            self._has_work.notify()
        return batch.future

    async def apply_health(self, watermark: int, upto: int, delta: HealthDelta | None) -> bool:
        """SQLite: write a health aggregator's pass inside the next commit (an empty one when
        nothing is queued); False when the watermark had moved from `watermark` (the pass is
        dropped). Raises the database's error if that commit failed."""
        if self._stopping or self._sqlite_conn is None:
            raise WriterStopped("the writer is not running")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._has_work:
            self._health_jobs.append(((watermark, upto, delta), done))
            self._has_work.notify()
        return await done

    def _take(self) -> tuple[list[Batch], dict[int, WordSet]]:
        """The batches of the next commit, and the words submit collected for them by app
        (PostgreSQL): all of them when the queue is emptied; when some batches stay queued, a
        copy (theirs included: a superset), the originals kept for the commit that takes them."""
        taken: list[Batch] = []
        count = 0
        with self._has_work:
            while self._queue and (not taken or count + len(self._queue[0].rows) <= self.max_commit_records):
                batch = self._queue.popleft()
                taken.append(batch)
                count += len(batch.rows)
            self._queued_records -= count
            if not self._queue:
                words, self._pending_words = self._pending_words, {}
            else:
                words = {app_id: found.copy() for app_id, found in self._pending_words.items()}
        return taken, words

    def _wait_for_work(self) -> list[tuple[HealthJob, asyncio.Future[bool]]] | None:
        """On the writer's thread: wait until something is queued; then the health jobs queued
        (SQLite), or None once stopping with everything committed. Waits for the event loop
        to take the results of earlier commits when two are undelivered (the bound)."""
        with self._has_work:
            while not self._queue and not self._health_jobs and not self._stopping:
                self._has_work.wait()
            if self._stopping and not self._queue and not self._health_jobs:
                return None
            jobs, self._health_jobs = self._health_jobs, []
        self._undelivered.acquire()
        return jobs

    def _sqlite_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """SQLite: commit back to back on this thread, taking what is queued the moment the
        previous commit ends; the event loop, often busy validating requests, only answers them
        afterwards (when the loop started each commit, the writer sat idle 17% of the time)."""
        writer = self._sqlite_conn
        assert writer is not None, "start() opens the SQLite writer"
        while (jobs := self._wait_for_work()) is not None:
            batches, _ = self._take()  # no words on SQLite (FTS5 indexes the rows)
            specs = [(b.app_id, b.key_id, b.batch_id, len(b.rows), b.rejected, b.rows, b.report, b.requests)
                     for b in batches]
            result: _Result
            try:
                result = (batches, writer.commit(specs, now_s(), [job for job, _ in jobs]), jobs)
            except Exception as exc:
                result = (batches, exc, jobs)
            loop.call_soon_threadsafe(self._results.put_nowait, result)
        loop.call_soon_threadsafe(self._results.put_nowait, None)

    def _postgres_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """PostgreSQL: commit back to back on this thread, in an event loop of its own (nothing
        else runs on it, so waiting for work blocks it), with a connection of its own, opened
        when first needed and again after it was lost."""
        own_loop = _new_event_loop()
        try:
            own_loop.run_until_complete(self._postgres_commits(loop))
        finally:
            own_loop.close()
            loop.call_soon_threadsafe(self._results.put_nowait, None)

    async def _postgres_commits(self, loop: asyncio.AbstractEventLoop) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while self._wait_for_work() is not None:
                batches, words = self._take()
                result: _Result
                try:
                    if conn is None or conn.is_closed():
                        # At most 10 s (asyncpg's default is 60): the requests of this commit are waiting.
                        conn = await asyncpg.connect(
                            self.db.url, timeout=10, server_settings={"application_name": "sentry-logger writer"},
                        )
                    result = (batches, await self._commit_postgres(conn, batches, words), [])
                except Exception as exc:
                    result = (batches, exc, [])
                loop.call_soon_threadsafe(self._results.put_nowait, result)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)

    @staticmethod
    async def _commit_postgres(conn: asyncpg.Connection, batches: list[Batch], words: dict[int, WordSet]) -> _Commit:
        position = {id(b): i for i, b in enumerate(batches)}
        duplicates: dict[int, tuple[int, int] | None] = {}

        def duplicate(batch: Batch, stored: tuple[int, int] | None) -> None:
            duplicates[position[id(batch)]] = stored

        first_id, fresh, revoked = await commit_postgres(
            conn, batches, now_s(), lock_key=_ADVISORY_KEY, mark_duplicate=duplicate, pending_words=words,
        )
        return first_id, [position[id(b)] for b in fresh], duplicates, [], [position[id(b)] for b in revoked]

    async def _deliver(self) -> None:
        while (result := await self._results.get()) is not None:
            self._undelivered.release()
            batches, outcome, jobs = result
            if isinstance(outcome, Exception):
                for _, done in jobs:
                    done.set_exception(outcome)
                await self._finish(batches, [], outcome)
                continue
            first_id, fresh, duplicates, applied, revoked = outcome
            for (_, done), ok in zip(jobs, applied, strict=True):
                done.set_result(ok)
            for index, stored in duplicates.items():
                self._mark_duplicate(batches[index], stored)
            for index in revoked:
                self.stats["revoked"] += 1
                batches[index].future.set_exception(KeyRevoked())
            await self._finish(batches, CommittedRows(first_id, [batches[i].rows for i in fresh]), None)

    async def _finish(self, batches: list[Batch], committed: Sequence[tuple[Any, ...]], error: Exception | None) -> None:
        """Answer the requests of one commit, then hand its rows to the listeners (in commit order)."""
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

    async def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL into the database once a second, off the writer's thread.

        Under steady ingest this checkpoint never catches up (the writer appends while it
        copies), and SQLite starts the WAL file over only once everything in it is copied: the
        WAL grew by ~100 MB a second and every COMMIT wrote to fresh file blocks (a third of
        the writer's time). So the writer then copies what is left itself before its next
        commit (what was written meanwhile, not a second's worth), and the WAL starts over."""
        writer = self._sqlite_conn
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        if writer is not None:

            def wake() -> None:
                loop.call_soon_threadsafe(finished.set)

            writer.checkpoint_finished = wake
        due = time.monotonic()
        while not self._stopping:
            due += 1.0  # once a second, however long the health aggregator's pass took
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - 1.0)
            try:
                await self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:
                log.warning("WAL checkpoint failed: %s", exc)
                continue
            if writer is None:
                continue
            finished.clear()
            writer.finish_checkpoint = True
            hook = self.after_checkpoint
            if hook is not None:
                # The health aggregator's reads, once the WAL has started over (or the writer is
                # idle): a reader inside its snapshot when the writer would start the WAL over
                # keeps it from doing so (the WAL file grew to 210-270 MB instead of 150 MB,
                # -10%); just after, its reads come from the database file, not the WAL.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), 0.25)
                try:
                    await hook()
                except Exception as exc:
                    log.warning("after the WAL checkpoint: %s", exc)

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

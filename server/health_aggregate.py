"""The health aggregator: counts new logs into the health tables, about once a second.

Ingest does no health work but keep a request record's route, duration_us and duration_bin
apart (`server.health_rollup.request_fields`; columns of logs on PostgreSQL, log_requests on
SQLite). Rolling each request's rows up in Python and adding them up in the writer cost a fifth
of the ingest rate; three queries over a second's new rows cost the database ~1 us a row
(SQLite; it counts into a temporary table rather than sorting for a GROUP BY), off the event
loop and the GIL.

`health_watermark.last_log_id`: every log with an id up to it is counted. A pass reads the
watermark W and the newest id N, then counts the ids in (W, min(N, W + PASS_MAX_IDS)]: records
per app, service, level and minute; requests per app, service, minute, route and bin; error
records one by one (their fingerprints are Python). The upserts and the new watermark are
written in one transaction that first checks that the watermark is still W, so a range is
counted once even with several server processes (a process that finds it moved drops its
pass). Ids are committed in increasing order (server.writer), so every id up to the newest
committed one is committed or never will be: a counted range never gains rows.

SQLite: the queries run on a read connection of this aggregator's own, on its thread; the
upserts go to the log writer, which applies them in its next commit (one writer per database).
The log writer's once-a-second WAL checkpoint runs the passes, once the WAL has started over,
so that the aggregator's reads never keep it from doing so. PostgreSQL: a timer of its own; one
transaction on a pool connection, which holds the watermark row (FOR UPDATE) so that
processes take turns.

The health API and dashboard call `catch_up` before they read, so they count every log
committed before the request. With HEALTH_AGGREGATION=false a pass only moves the watermark:
logs stored meanwhile are never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from server._pg_writer import one_statement
from server.db import DB, sqlite_connection
from server.health_rollup import HealthDelta, minutes, spread
from server.health_store import TOKEN_GET, LatencyCache, postgres_upserts

if TYPE_CHECKING:
    from server.writer import LogWriter

__all__ = ["PASS_MAX_IDS", "WATERMARK_GET", "WATERMARK_SET", "HealthAggregator"]

log = logging.getLogger("server.health")

PASS_MAX_IDS = 200_000
CATCH_UP_MAX_PASSES = 5
# An expression (0 when the row is missing, as after a TRUNCATE), and an upsert with {p} for the value.
WATERMARK_GET = "COALESCE((SELECT last_log_id FROM health_watermark WHERE id = 1), 0)"
WATERMARK_SET = ("INSERT INTO health_watermark (id, last_log_id) VALUES (1, {p}) "
                 "ON CONFLICT (id) DO UPDATE SET last_log_id = excluded.last_log_id")
_WATERMARK_ROW = "INSERT INTO health_watermark (id, last_log_id) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
_NEWEST = "SELECT COALESCE(MAX(id), 0) FROM logs"
_RANGE = "id > {a} AND id <= {b}"
_MINUTE = "ts / 60000000"
_COUNTS = (f"SELECT app_id, service, level_name, {_MINUTE}, count(*), max({{least}}(ts, received_at)) FROM logs "
           f"WHERE {_RANGE} GROUP BY app_id, service, level_name, {_MINUTE}")
_LATENCY = (f"SELECT app_id, service, {_MINUTE}, route, duration_bin, count(*), {{sum}}, max({{least}}(ts, received_at)) "
            f"FROM logs WHERE {_RANGE} AND duration_us IS NOT NULL GROUP BY app_id, service, {_MINUTE}, route, duration_bin")
_ERRORS = f"SELECT app_id, service, ts, message FROM logs WHERE {_RANGE} AND level >= 40 ORDER BY id"


# SQLite sorts every row for a GROUP BY (it has no hash aggregation): _COUNTS cost it 1.2-1.7 us
# a row, against 0.8-1.1 for adding each row into a small table keyed by the group, as here (a
# pass has a few dozen groups: apps x services x levels x minutes; bench/health_pass_cost.py). The table is the aggregator's
# connection's own (TEMP), emptied before each pass; nothing is written to the database.
_SQLITE_PASS_COUNTS = (
    "CREATE TEMP TABLE IF NOT EXISTS pass_counts (app_id INTEGER NOT NULL, service TEXT NOT NULL, "
    "level_name TEXT NOT NULL, minute INTEGER NOT NULL, records INTEGER NOT NULL, newest INTEGER NOT NULL, "
    "PRIMARY KEY (app_id, service, level_name, minute))"
)
_SQLITE_COUNT_INTO = (
    f"INSERT INTO temp.pass_counts SELECT app_id, service, level_name, {_MINUTE}, 1, min(ts, received_at) "
    "FROM logs WHERE id > ? AND id <= ? "
    "ON CONFLICT DO UPDATE SET records = records + 1, newest = max(newest, excluded.newest)"
)
_SQLITE_COUNTS = "SELECT app_id, service, level_name, minute, records, newest FROM temp.pass_counts"

# SQLite keeps the request fields in log_requests (migrations/sqlite/0007_request_columns.sql).
_SQLITE_LATENCY = ("SELECT l.app_id, l.service, l.ts / 60000000, r.route, r.duration_bin, count(*), sum(r.duration_us), "
                   "max(min(l.ts, l.received_at)) FROM log_requests r JOIN logs l ON l.id = r.id "
                   "WHERE r.id > ? AND r.id <= ? GROUP BY l.app_id, l.service, l.ts / 60000000, r.route, r.duration_bin")


def _queries(dialect: str) -> tuple[str, str, str]:
    if dialect == "sqlite":
        return _SQLITE_COUNT_INTO, _SQLITE_LATENCY, _ERRORS.format(a="?", b="?")
    args = {"a": "$1", "b": "$2", "least": "LEAST", "sum": "sum(duration_us)::bigint"}
    return _COUNTS.format(**args), _LATENCY.format(**args), _ERRORS.format(**args)


# (watermark read, last id counted, the aggregates or None when only the watermark moves)
Pass = tuple[int, int, "HealthDelta | None"]
ApplySqlite = Callable[[int, int, "HealthDelta | None"], Awaitable[bool]]


class HealthAggregator:
    def __init__(self, db: DB, *, enabled: bool, interval_s: float, apply_sqlite: ApplySqlite | None = None) -> None:
        self.db = db
        self.enabled = enabled
        self.interval_s = max(0.05, interval_s)
        # SQLite: LogWriter.apply_health, which writes a pass's rows inside the writer's next commit.
        self._apply_sqlite = apply_sqlite
        self._counts, self._latency, self._errors = _queries(db.dialect)
        self._lock = asyncio.Lock()
        self._last_pass = 0.0
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._driver: LogWriter | None = None
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._latency_cache = LatencyCache()  # PostgreSQL's; SQLite's belongs to the writer's connection
        self.stats = {"passes": 0, "logs": 0, "dropped_passes": 0, "failed_passes": 0, "last_pass_ms": 0.0}

    async def start(self, sqlite_writer: LogWriter | None = None) -> None:
        """Start counting: on a timer of its own (PostgreSQL), or (SQLite) from `sqlite_writer`'s
        once-a-second WAL checkpoint, just after it (see LogWriter.after_checkpoint)."""
        if self.db.dialect == "sqlite":
            assert sqlite_writer is not None, "SQLite: the log writer drives the aggregator"
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-aggregator")
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sqlite)
            sqlite_writer.after_checkpoint = self._tick
            self._driver = sqlite_writer
        else:
            self._task = asyncio.create_task(self._run(), name="health-aggregator")

    async def stop(self) -> None:
        """Stop (what is not counted yet, the next start counts), after the pass in progress."""
        self._stopped = True
        if self._driver is not None:
            self._driver.after_checkpoint = None
            self._driver = None
        async with self._lock:
            pass
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            if self._conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
                self._conn = None
            self._executor.shutdown()
            self._executor = None

    async def catch_up(self) -> None:
        """Return once the health tables count every log committed before the call (at most
        CATCH_UP_MAX_PASSES passes: a longer backlog is counted on in the background)."""
        async with self._lock:
            for _ in range(CATCH_UP_MAX_PASSES):
                if self._stopped or not await self._pass():
                    return

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._tick()

    async def _tick(self) -> None:
        """A pass when one is due (and more while far behind)."""
        if self._stopped or time.monotonic() - self._last_pass < self.interval_s - 0.01:
            return
        try:
            async with self._lock:
                while not self._stopped and await self._pass():
                    await asyncio.sleep(0)
        except Exception as exc:
            self.stats["failed_passes"] += 1
            log.warning("health aggregation pass failed: %s", exc)

    async def _pass(self) -> bool:
        """Count the next range; True when more than one pass was waiting."""
        started = time.perf_counter()
        self._last_pass = time.monotonic()
        if self.db.dialect == "sqlite":
            assert self._executor is not None and self._apply_sqlite is not None, "start() first"
            watermark, upto, delta = await asyncio.get_running_loop().run_in_executor(self._executor, self._read_sqlite)
            applied = upto > watermark and await self._apply_sqlite(watermark, upto, delta)
        else:
            applied, watermark, upto = await self._postgres()
        more = upto - watermark >= PASS_MAX_IDS
        if upto > watermark:
            if applied:
                self.stats["passes"] += 1
                self.stats["logs"] += upto - watermark
            else:
                self.stats["dropped_passes"] += 1
        self.stats["last_pass_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return applied and more

    # SQLite: on the aggregator's own thread and read connection

    def _open_sqlite(self) -> None:
        # Not read_only (PRAGMA query_only refuses TEMP tables too): it writes its pass_counts only.
        conn = sqlite_connection(self.db.sqlite_path)
        conn.execute("PRAGMA cache_size=-2048")  # it reads each new row once
        conn.execute(_SQLITE_PASS_COUNTS)
        self._conn = conn

    def _read_sqlite(self) -> Pass:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")  # one snapshot for the watermark and the queries
        try:
            (watermark,) = conn.execute(f"SELECT {WATERMARK_GET}").fetchone()
            (newest,) = conn.execute(_NEWEST).fetchone()
            upto = min(newest, watermark + PASS_MAX_IDS)
            if upto <= watermark or not self.enabled:
                return watermark, upto, None
            args = (watermark, upto)
            conn.execute("DELETE FROM temp.pass_counts")
            conn.execute(self._counts, args)  # _SQLITE_COUNT_INTO
            found = [conn.execute(_SQLITE_COUNTS).fetchall()]
            found += [conn.execute(query, args).fetchall() for query in (self._latency, self._errors)]
        finally:
            conn.execute("COMMIT")
        return watermark, upto, spread(minutes(*found))

    # PostgreSQL

    async def _postgres(self) -> tuple[bool, int, int]:
        async with self.db.raw() as conn, conn.transaction():
            await conn.execute(_WATERMARK_ROW)
            watermark, token = await conn.fetchrow(
                f"SELECT last_log_id, ({TOKEN_GET}) FROM health_watermark WHERE id = 1 FOR UPDATE")
            upto = min(await conn.fetchval(_NEWEST), watermark + PASS_MAX_IDS)
            if upto <= watermark:
                return False, watermark, upto
            parts: list[tuple[str, list[Any]]] = []
            if self.enabled:
                found = [await conn.fetch(query, watermark, upto) for query in (self._counts, self._latency, self._errors)]
                delta = spread(minutes(*([tuple(r) for r in rows] for rows in found)))
                parts = await postgres_upserts(conn, delta, self._latency_cache, token)
            parts.append((WATERMARK_SET.format(p="$1"), [upto]))
            sql, args = one_statement(parts)
            await conn.execute(sql, *args)
        return True, watermark, upto

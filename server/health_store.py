"""Writing health aggregates inside the log writer's transaction, and reading them back.

One upsert statement per table and health aggregator pass (server.health_aggregate): SQLite
multi-row `INSERT ... VALUES` on the log writer's own connection (already on its thread),
PostgreSQL one `INSERT ... SELECT FROM unnest(...)` per table, all sent as one statement, so a
pass costs the same few round trips however many keys it touches.
Counters add up in SQL. Latency histograms are JSON arrays (server.health_sketch): a pass
appends its own additions to the stored text in SQL, and every `LatencyCache.APPEND_MAX`
appends rewrites the merged histogram kept in memory (read back from the database when another
process has been there); that is safe because passes are serialised (inside the log writer's
BEGIN IMMEDIATE on SQLite, holding the health_watermark row on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from server._sqlite_bulk import execute_rows
from server.db import DB, sqlite_connection
from server.health_rollup import HealthDelta
from server.health_sketch import appended, decode, encode

__all__ = ["TOKEN_GET", "HealthReader", "LatencyCache", "postgres_upserts", "write_sqlite"]

log = logging.getLogger("server.health")


@dataclass(frozen=True)
class _Table:
    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    pg_types: tuple[str, ...]  # of keys + values
    merge: dict[str, str]  # column -> how the stored value and `excluded` combine ({old}, {new})

    def _sql(self, dialect: str) -> str:
        cols = (*self.keys, *self.values)
        greatest = "max" if dialect == "sqlite" else "GREATEST"
        sets = ", ".join(
            f"{c} = " + self.merge[c].format(old=f"{self.name}.{c}", new=f"excluded.{c}", greatest=greatest)
            for c in self.merge
        )
        if dialect == "sqlite":  # the rows' VALUES go between the two halves (see sqlite_parts)
            source = "\0"
        else:
            source = "SELECT * FROM unnest(" + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self.pg_types)) + ")"
        return (f"INSERT INTO {self.name} ({', '.join(cols)}) {source} "
                f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {sets}")


_ADD = "{old} + {new}"
_MAX = "{greatest}({old}, {new})"
_NEW = "{new}"
_LATENCY_KEY = ("app_id", "res", "service", "route", "start_s")
_TABLES = {
    "services": _Table("health_services", ("app_id", "service"), ("last_seen",), ("bigint", "text", "bigint"),
                       {"last_seen": _MAX}),
    "routes": _Table("health_routes", ("app_id", "service", "route"), ("last_seen",),
                     ("bigint", "text", "text", "bigint"), {"last_seen": _MAX}),
    "counts": _Table("health_counts", ("app_id", "res", "service", "start_s", "level"), ("records",),
                     ("bigint", "int", "text", "bigint", "smallint", "bigint"), {"records": _ADD}),
    "latency": _Table("health_latency", _LATENCY_KEY, ("requests", "total_us", "bins"),
                      ("bigint", "int", "text", "text", "bigint", "bigint", "bigint", "text"),
                      {"requests": _ADD, "total_us": _ADD, "bins": "{old} || {new}"}),
    "latency_rewrite": _Table("health_latency", _LATENCY_KEY, ("requests", "total_us", "bins"),
                              ("bigint", "int", "text", "text", "bigint", "bigint", "bigint", "text"),
                              {"requests": _ADD, "total_us": _ADD, "bins": _NEW}),
    "errors": _Table("health_errors", ("app_id", "res", "service", "start_s", "fingerprint"),
                     ("records", "last_ts", "message"),
                     ("bigint", "int", "text", "bigint", "text", "bigint", "bigint", "text"),
                     {"records": _ADD, "last_ts": _MAX}),
}
# (head, tail) around the multi-row VALUES of server._sqlite_bulk.execute_rows
_SQLITE_SQL = {name: tuple(table._sql("sqlite").split(" \0 ")) for name, table in _TABLES.items()}
_PG_SQL = {name: table._sql("postgresql") for name, table in _TABLES.items()}
_SQLITE_LATENCY = ("SELECT requests, total_us, bins FROM health_latency WHERE "
                   + " AND ".join(f"{c} = ?" for c in _LATENCY_KEY))
_PG_LATENCY = ("SELECT app_id, res, service, route, start_s, requests, total_us, bins FROM health_latency "
               "JOIN unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[]) "
               f"AS k({', '.join(_LATENCY_KEY)}) USING ({', '.join(_LATENCY_KEY)})")


TOKEN_GET = "SELECT token FROM health_writer WHERE id = 1"
_TOKEN_SET = "INSERT INTO health_writer (id, token) VALUES (1, {p}) ON CONFLICT (id) DO UPDATE SET token = excluded.token"


class LatencyCache:
    """One writer's copy of the latency rows it committed, so a commit need not read them back.

    Trusted only when the database's writer token is the one this cache wrote with its last
    commit: another process writing, or our own commit rolling back, leaves a different token
    and the cache is dropped (rows are then read from the database). Bound: keys of buckets
    that ended more than EVICT_AFTER_S before the newest one are dropped past MAX_KEYS.
    """

    MAX_KEYS = 5000
    EVICT_AFTER_S = 600
    APPEND_MAX = 32

    def __init__(self) -> None:
        self.token = ""
        # key -> [requests, total_us, {bin: requests}, arrays appended to the stored histogram]
        self.rows: dict[tuple[Any, ...], list[Any]] = {}

    def check(self, stored_token: Any) -> str:
        """Drop the rows unless `stored_token` is ours; returns the token for this commit."""
        if stored_token is None or stored_token != self.token:
            self.rows.clear()
        if len(self.rows) > self.MAX_KEYS:
            newest = max(key[4] for key in self.rows)
            self.rows = {k: v for k, v in self.rows.items() if k[4] + k[1] >= newest - self.EVICT_AFTER_S}
        self.token = secrets.token_hex(8)
        return self.token

    def merge(
        self, delta: HealthDelta, stored: dict[tuple[Any, ...], tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Rows to write, (appended, rewritten), all with the delta's requests and total to add.
        Mostly the delta's own histogram, appended to the stored one: encoding every touched
        bucket's whole histogram each commit cost the SQLite writer 1.5 us per row. After
        APPEND_MAX appends to a key (counting those found in a stored row read back), the key's
        whole histogram, kept here, is written instead."""
        appends, rewrites = [], []
        for key, (requests, total_us, bins) in delta.latency.items():
            row = self.rows.get(key)
            if row is None:
                old = stored.get(key)
                row = self.rows[key] = [old[0], old[1], decode(old[2]), appended(old[2]) + 1] if old else [0, 0, {}, 0]
            row[0] += requests
            row[1] += total_us
            hist = row[2]
            for index, count in bins.items():
                hist[index] = hist.get(index, 0) + count
            if row[3] < self.APPEND_MAX:
                row[3] += 1
                appends.append((*key, requests, total_us, encode(bins)))
            else:
                row[3] = 0
                rewrites.append((*key, requests, total_us, encode(hist)))
        return appends, rewrites


def _rows(delta: HealthDelta) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "services": [(*k, v) for k, v in delta.services.items()],
        "routes": [(*k, v) for k, v in delta.routes.items()],
        "counts": [(*k, v) for k, v in delta.counts.items()],
        "errors": [(*k, *v) for k, v in delta.errors.items()],
    }


def write_sqlite(conn: sqlite3.Connection, delta: HealthDelta, cache: LatencyCache) -> None:
    """Upsert the delta on the writer's connection, inside its open transaction."""
    for name, rows in _rows(delta).items():
        if rows:
            head, tail = _SQLITE_SQL[name]
            execute_rows(conn, head, rows, " " + tail)
    if delta.latency:
        token = cache.check((conn.execute(TOKEN_GET).fetchone() or (None,))[0])
        stored = {}
        for key in delta.latency:
            if key not in cache.rows:
                found = conn.execute(_SQLITE_LATENCY, key).fetchone()
                if found is not None:
                    stored[key] = found
        for name, rows in zip(("latency", "latency_rewrite"), cache.merge(delta, stored), strict=True):
            if rows:
                head, tail = _SQLITE_SQL[name]
                execute_rows(conn, head, rows, " " + tail)
        conn.execute(_TOKEN_SET.format(p="?"), (token,))


async def postgres_upserts(
    conn: Any, delta: HealthDelta, cache: LatencyCache, stored_token: Any
) -> list[tuple[str, list[Any]]]:
    """The delta's upserts as (statement with $1.., arguments) for the caller to send in one
    round trip (server._pg_writer.one_statement), inside the aggregator's transaction;
    `stored_token` is health_writer's token read while holding the health_watermark row.
    Reads stored latency rows first only for buckets the cache does not hold (a new minute, or
    another process was here)."""
    parts: list[tuple[str, list[Any]]] = [
        (_PG_SQL[name], [list(column) for column in zip(*rows, strict=True)]) for name, rows in _rows(delta).items() if rows
    ]
    if delta.latency:
        token = cache.check(stored_token)
        missing = [key for key in delta.latency if key not in cache.rows]
        stored = {}
        if missing:
            found = await conn.fetch(_PG_LATENCY, *map(list, zip(*missing, strict=True)))
            stored = {tuple(r[:5]): tuple(r[5:]) for r in found}
        for name, rows in zip(("latency", "latency_rewrite"), cache.merge(delta, stored), strict=True):
            if rows:
                parts.append((_PG_SQL[name], [list(column) for column in zip(*rows, strict=True)]))
        parts.append((_TOKEN_SET.format(p="$1"), [token]))
    return parts


class HealthReader:
    """Read-only queries with `?` placeholders, off the event loop and off the shared connection.

    SQLite: a connection of its own on one thread (a 30-day query must not hold the lock that
    every request's look-ups wait on). PostgreSQL: the pool's asyncpg connections.
    """

    def __init__(self, db: DB) -> None:
        self.db = db
        self.dialect = db.dialect
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        # The health aggregator's catch_up: it counts what is committed before a read.
        self.catch_up: Callable[[], Awaitable[None]] | None = None

    async def fresh(self) -> HealthReader:
        """This reader, once the health tables count every log committed so far (if the
        aggregator's pass fails, what is stored is read, and the failure logged)."""
        if self.catch_up is not None:
            try:
                await self.catch_up()
            except Exception as exc:
                log.warning("health aggregates not brought up to date before a read: %s", exc)
        return self

    async def open(self) -> None:
        if self.dialect == "sqlite":
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-reader")
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sqlite)

    def _open_sqlite(self) -> None:
        self._conn = sqlite_connection(self.db.sqlite_path, read_only=True)

    async def close(self) -> None:
        if self._executor is not None:
            conn = self._conn
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._executor.shutdown()
            self._executor = self._conn = None

    async def fetch(self, query: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.dialect == "sqlite":
            conn, executor = self._conn, self._executor
            assert conn is not None and executor is not None, "open() first"

            def run() -> list[tuple[Any, ...]]:
                assert conn is not None
                return conn.execute(query, tuple(args)).fetchall()

            return await asyncio.get_running_loop().run_in_executor(executor, run)
        pg_query: list[str] = []
        n = 0
        for part in query.split("?"):
            if pg_query:
                n += 1
                pg_query.append(f"${n}")
            pg_query.append(part)
        async with self.db.raw() as conn:
            return [tuple(r) for r in await conn.fetch("".join(pg_query), *args)]

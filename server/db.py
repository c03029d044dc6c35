"""Database access: `databases` for queries, the driver underneath for bulk writes.

SQLite: `databases` opens a new aiosqlite connection (and thread) per acquire, which is
too slow for per-request look-ups, so this module keeps one shared connection for queries
and serialises its use with a lock (SQLite runs one writer at a time anyway). The log
writer (`server.writer`) has a connection of its own.
PostgreSQL: `databases`' asyncpg pool, one connection per query or transaction.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import databases

__all__ = ["BIGINT_MAX", "BIGINT_MIN", "DB", "Tx", "as_bigint", "hide_password", "sqlite_connection"]

# Ids, timestamps and other integers are BIGINT columns (SQLite INTEGER: the same 64 bits). A
# larger Python int fails in the driver (a 500), so input is checked against these first.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def as_bigint(value: Any) -> int | None:
    """`value` (an int, or a string of decimal digits) as an int that fits a BIGINT; else None."""
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit() or len(value) > 20:
            return None
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if BIGINT_MIN <= value <= BIGINT_MAX else None

# Python's sqlite3 (3.11) binds int, float, str and bytearray directly, but sends every other
# value, None included, through its adapter look-up first: a tuple built, a dict searched and an
# AttributeError raised and cleared, ~0.3-0.5 us per None. Every log row has a few (its id,
# which SQLite assigns, and usually its exception and process id): a fifth of the cost of
# binding a row (docs/benchmarks.md, "SQLite: binding a row's values"). An adapter registered
# for None ends the look-up at the dict; `{}.get` is a C callable that returns None for
# anything. The value bound is the same NULL. Process-wide, as all of sqlite3's adapters are.
_NOTHING: dict[object, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
)


def hide_password(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _normalise_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return url


class Tx:
    """Query methods bound to one connection (inside a transaction or the shared one)."""

    def __init__(self, connection: databases.core.Connection) -> None:
        self.connection = connection

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        row = await self.connection.fetch_one(query, dict(values or {}))
        return None if row is None else dict(row._mapping)

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = await self.connection.fetch_all(query, dict(values or {}))
        return [dict(r._mapping) for r in rows]

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self.connection.fetch_val(query, dict(values or {}))

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        """Run a statement; returns the new row id for an INSERT ... RETURNING id (both dialects)."""
        if "RETURNING" in query.upper():
            return await self.connection.fetch_val(query, dict(values or {}))
        return await self.connection.execute(query, dict(values or {}))


def sqlite_connection(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """A plain sqlite3 connection with the server's pragmas, for use on one thread of its own
    (the log writer, the health reader, the health aggregator)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    if read_only:
        conn.execute("PRAGMA query_only=ON")
    return conn


async def _release_as_is(connection: Any) -> None:
    """asyncpg's pool resets a released connection with a query of its own (unlock advisory
    locks, CLOSE ALL, UNLISTEN *, RESET ALL): a second round trip for every ingest request's
    key look-up. It still rolls back an open transaction and drops listeners before calling
    this; nothing else needs undoing, because pooled connections never take session-level
    locks (the writer's is transaction-scoped; migrations unlock theirs in `finally`), LISTEN
    (the hub has its own connections) or SET."""


class DB:
    """The server's database: SQLite (default) or PostgreSQL, one interface."""

    def __init__(self, url: str) -> None:
        self.url = _normalise_url(url)
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        options: dict[str, Any] = {}
        if self.dialect == "postgresql":
            options = {"min_size": 1, "max_size": 10, "reset": _release_as_is}
        self.database = databases.Database(self.url, **options)
        self._shared: databases.core.Connection | None = None
        self._fast_reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"DB({hide_password(self.url)!r})"

    async def connect(self) -> None:
        await self.database.connect()
        if self.dialect == "sqlite":
            self._shared = self.database.connection()
            await self._shared.__aenter__()
            for pragma in SQLITE_PRAGMAS:
                await self._shared.execute(pragma)
            self._fast_reader = sqlite3.connect(self.sqlite_path, isolation_level=None, check_same_thread=False)
            self._fast_reader.execute("PRAGMA busy_timeout=0")

    async def disconnect(self) -> None:
        if self._fast_reader is not None:
            self._fast_reader.close()
            self._fast_reader = None
        if self._shared is not None:
            await self._shared.__aexit__(None, None, None)
            self._shared = None
        await self.database.disconnect()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Tx]:
        if self._shared is not None:
            async with self._lock:
                yield Tx(self._shared)
        else:
            async with self.database.connection() as connection:
                yield Tx(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction. On SQLite it is BEGIN IMMEDIATE, so the busy timeout applies."""
        if self._shared is not None:
            async with self._lock:
                tx = Tx(self._shared)
                await self._shared.execute("BEGIN IMMEDIATE")
                try:
                    yield tx
                except BaseException:
                    await self._shared.execute("ROLLBACK")
                    raise
                await self._shared.execute("COMMIT")
        else:
            async with self.database.connection() as connection, connection.transaction():
                yield Tx(connection)

    async def fetch_row_fast(self, query: str, *args: Any) -> tuple[Any, ...] | None:
        """Hot-path read with `?` placeholders straight on the driver (no SQLAlchemy compile)."""
        if self._fast_reader is not None:
            # An indexed point read on a WAL database takes microseconds and never waits for the
            # writer, so it runs right here: a hand-off to another thread costs far more.
            try:
                row = self._fast_reader.execute(query, args).fetchone()
                return None if row is None else tuple(row)
            except sqlite3.OperationalError:
                pass  # e.g. busy during a checkpoint: take the ordinary path, which waits
        if self._shared is not None:
            async with self._lock:
                cursor = await self._shared.raw_connection.execute(query, args)
                row = await cursor.fetchone()
                await cursor.close()
                return None if row is None else tuple(row)
        pg_query = query
        for i in range(1, len(args) + 1):
            pg_query = pg_query.replace("?", f"${i}", 1)
        async with self.database.connection() as connection:
            record = await connection.raw_connection.fetchrow(pg_query, *args)
        return None if record is None else tuple(record)

    @property
    def sqlite_path(self) -> str:
        path = self.url.split("///", 1)[1] if "///" in self.url else ":memory:"
        return path.split("?", 1)[0]

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[Any]:
        """The driver's own connection (aiosqlite or asyncpg) of a pooled `databases` connection."""
        async with self.database.connection() as connection:
            yield connection.raw_connection

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        async with self._conn() as tx:
            return await tx.fetch_one(query, values)

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        async with self._conn() as tx:
            return await tx.fetch_all(query, values)

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        async with self._conn() as tx:
            return await tx.fetch_val(query, values)

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        async with self._conn() as tx:
            return await tx.execute(query, values)

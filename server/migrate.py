"""Plain SQL migrations from `migrations/<dialect>/NNNN_name.sql`, applied in order once each.

Applied versions are recorded in `schema_migrations`. Each file runs in one transaction;
a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) keeps two processes
starting together from applying the same file twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from server.db import DB

__all__ = ["MIGRATIONS_DIR", "Migration", "apply_migrations", "pending_migrations"]

log = logging.getLogger("server.migrate")
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_ADVISORY_KEY = 7_301_955_001


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


def available_migrations(dialect: str, directory: Path = MIGRATIONS_DIR, up_to: str | None = None) -> list[Migration]:
    files = sorted((directory / dialect).glob("*.sql"))
    return [Migration(p.stem, p) for p in files if up_to is None or p.stem <= up_to]


async def _applied(conn: object, dialect: str) -> set[str]:
    if dialect == "sqlite":
        cursor = await conn.execute("SELECT version FROM schema_migrations")  # type: ignore[attr-defined]
        return {row[0] for row in await cursor.fetchall()}
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}  # type: ignore[attr-defined]


async def pending_migrations(db: DB) -> list[Migration]:
    async with db.raw() as conn:
        await _ensure_table(conn, db.dialect)
        done = await _applied(conn, db.dialect)
    return [m for m in available_migrations(db.dialect) if m.version not in done]


async def _ensure_table(conn: object, dialect: str) -> None:
    sql = "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
    await conn.execute(sql)  # type: ignore[attr-defined]


async def apply_migrations(db: DB, up_to: str | None = None) -> list[str]:
    """Apply every pending migration (or those up to version `up_to`, e.g. "0003_health");
    returns the versions applied (empty when up to date)."""
    applied: list[str] = []
    async with db.raw() as conn:
        if db.dialect == "postgresql":
            # Held for the whole run: even CREATE TABLE IF NOT EXISTS races between processes.
            await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_KEY)
            try:
                await _ensure_table(conn, db.dialect)
                for migration in available_migrations("postgresql", up_to=up_to):
                    if migration.version in await _applied(conn, "postgresql"):
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                            migration.version,
                            int(time.time()),
                        )
                    applied.append(migration.version)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_KEY)
        else:
            await conn.execute("PRAGMA busy_timeout=10000")
            await conn.execute("PRAGMA journal_mode=WAL")
            await _ensure_table(conn, db.dialect)
            for migration in available_migrations("sqlite", up_to=up_to):
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    if migration.version in await _applied(conn, "sqlite"):
                        await conn.execute("ROLLBACK")
                        continue
                    # executescript would COMMIT first; run the statements inside our transaction.
                    for statement in _split_sql(migration.sql):
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (migration.version, int(time.time())),
                    )
                    await conn.execute("COMMIT")
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                applied.append(migration.version)
    for version in applied:
        log.info("applied migration %s", version)
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a SQLite script into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    import sqlite3

    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements

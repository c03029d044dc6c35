from __future__ import annotations

import asyncio

from server.db import DB
from server.migrate import apply_migrations, available_migrations, pending_migrations


def test_migrations_apply_once_and_are_recorded(empty_database_url: str) -> None:
    async def go() -> None:
        db = DB(empty_database_url)
        await db.connect()
        try:
            first = await apply_migrations(db)
            again = await apply_migrations(db)
            assert first == [m.version for m in available_migrations(db.dialect)]
            assert again == [] and await pending_migrations(db) == []
            recorded = await db.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in recorded] == first
        finally:
            await db.disconnect()

    asyncio.run(go())


def test_concurrent_migrators_apply_each_file_once(empty_database_url: str) -> None:
    async def go() -> None:
        dbs = [DB(empty_database_url) for _ in range(3)]
        for db in dbs:
            await db.connect()
        try:
            results = await asyncio.gather(*(apply_migrations(db) for db in dbs))
            assert sorted(v for r in results for v in r) == [m.version for m in available_migrations(dbs[0].dialect)]
        finally:
            for db in dbs:
                await db.disconnect()

    asyncio.run(go())


def test_both_dialects_have_the_same_migration_versions() -> None:
    assert [m.version for m in available_migrations("sqlite")] == [m.version for m in available_migrations("postgresql")]


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    async def go() -> None:
        db = DB(f"sqlite:///{tmp_path}/wal.db")
        await db.connect()
        try:
            await apply_migrations(db)
            assert (await db.fetch_val("PRAGMA journal_mode")).lower() == "wal"
        finally:
            await db.disconnect()

    asyncio.run(go())

from __future__ import annotations

import asyncio

from server.db import DB
from server.migrate import apply_migrations, available_migrations, pending_migrations
from tests.conftest import ingest_key


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


def test_word_blocks_migration_converts_stored_logs(empty_database_url: str) -> None:
    """0004 turns PostgreSQL's per-row word arrays into word text and blocks of 2,000 logs per
    app; keyword search then finds the old logs and new ones alike (SQLite: nothing changes)."""
    from starlette.datastructures import QueryParams

    from server.fulltext import words
    from server.logs_query import parse_log_query, run_log_query
    from server.writer import Batch, LogWriter

    def message(i: int) -> str:
        return f"job {i} done" + (" disk full" if i % 1000 == 7 else "") + (" disk" if i == 4500 else "")

    async def search(db: DB, app_id: int, q: str) -> list[str]:
        page = await run_log_query(db, app_id, parse_log_query(QueryParams({"q": q, "limit": "1000"}), 100, 1000))
        return [log["message"] for log in page["logs"]]

    async def go() -> None:
        db = DB(empty_database_url)
        await db.connect()
        try:
            await apply_migrations(db, up_to="0003_health")
            # 4,501 logs of app 1 (ids 1..4501) with 300 of app 2 in between, stored the 0003 way.
            rows = [(i, 1, 1_000_000 * i, message(i)) for i in range(1, 4502)]
            rows += [(4501 + i, 2, 1_000_000 * i, f"other {i} disk full") for i in range(1, 301)]
            rows.sort(key=lambda r: (r[2], r[1]))
            rows = [(n, app, ts, text) for n, (_, app, ts, text) in enumerate(rows, 1)]
            async with db.raw() as conn:
                if db.dialect == "postgresql":
                    await conn.copy_records_to_table(
                        "logs", records=[(*r, r[2], 20, "INFO", words(r[3])) for r in rows],
                        columns=("id", "app_id", "ts", "message", "received_at", "level", "level_name", "words"))
                    await conn.execute("SELECT setval('logs_id_seq', $1)", len(rows))
                else:
                    await conn.executemany(
                        "INSERT INTO logs (id, app_id, ts, message, received_at, level, level_name) "
                        "VALUES (?, ?, ?, ?, ?, 20, 'INFO')", [(*r, r[2]) for r in rows])
                    await conn.execute("INSERT INTO logs_fts (rowid, message) SELECT id, message FROM logs")
                    await conn.commit()
            assert await apply_migrations(db) == [m.version for m in available_migrations(db.dialect)][3:]
            if db.dialect == "postgresql":
                expected = []
                for app in (1, 2):
                    mine = [r for r in rows if r[1] == app]
                    for start in range(0, len(mine), 2000):
                        part = mine[start:start + 2000]
                        expected.append((app, part[0][0], part[-1][0], part[0][2], part[-1][2],
                                         sorted({w for r in part for w in words(r[3])})))
                blocks = await db.fetch_all("SELECT * FROM log_word_blocks ORDER BY app_id, first_id")
                assert [(b["app_id"], b["first_id"], b["last_id"], b["min_ts"], b["max_ts"], sorted(b["words"]))
                        for b in blocks] == expected
                assert len(expected) == 4
                assert await db.fetch_val("SELECT words FROM logs WHERE message = :m", {"m": message(7)}) == (
                    " job 7 done disk full ")

            writer = LogWriter(db, max_queue_records=100, max_commit_records=100, batch_retention_hours=1)
            await writer.start()
            row = (None, 1, 9_000_000_000, 9_000_000_000, 40, "ERROR", "", "", "disk full again", None, None,
                   "", "", "", None, "", "", "")
            await writer.submit(Batch(1, await ingest_key(db), [row]))
            await writer.stop()
            assert await search(db, 1, "disk full") == ["disk full again"] + [message(i) for i in (4007, 3007, 2007, 1007, 7)]
            assert await search(db, 1, "disk") == ["disk full again", message(4500)] + [
                message(i) for i in (4007, 3007, 2007, 1007, 7)]
            assert await search(db, 1, "job 2345") == ["job 2345 done"]
            assert len(await search(db, 2, "disk full")) == 300
        finally:
            await db.disconnect()

    asyncio.run(go())

"""The SQLite writer's INSERT of log rows, per row: None bound through sqlite3's adapter
look-up (Python's default: the baseline) against the adapter for None that server.db registers.

    .venv/bin/python bench/sqlite_bind_cost.py [--rows 20000] [--repeat 7]

Rows as ingest makes them (`server.ingest_fast`, the id None for SQLite to assign) from bodies
of 100 loghub messages as the ingest benchmark posts them (three None a row: id, exception,
process id) and as the SDK sends them (the id, and the exception on nine logs in ten).
Inserted into the `logs` table of a fresh database with every migration applied, by the
writer's own multi-row statements (`server._sqlite_bulk.execute_rows`), 1,000 rows a
transaction, each rolled back so that every pass inserts into the same table; with and
without the adapter alternately, the best of --repeat passes. The full-text insert, the WAL
commit and the checkpoints are not in it (see bench/ingest_throughput.py for all of them).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ingest_bodies, sample_messages, sdk_bodies
from server._sqlite_bulk import execute_rows
from server._sqlite_writer import _INSERT_HEAD
from server.db import DB, sqlite_connection
from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits
from server.migrate import apply_migrations

LIMITS = Limits(32768, 16384, 5, 65536)
_NONE_ADAPTER = (type(None), sqlite3.PrepareProtocol)


def rows_of(bodies: list[bytes], limit: int) -> list[tuple[Any, ...]]:
    now = time.time_ns() // 1000
    rows: list[tuple[Any, ...]] = []
    for body in bodies:
        payload = fast_payload(body)
        made = None if payload is None else fast_rows(payload.logs, 1, "prod", now, LIMITS, [])
        assert made is not None, "the fast path stepped aside"
        rows.extend(made)
    return rows[:limit]


def per_row_us(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], chunk: int = 1000) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), chunk):
        conn.execute("BEGIN IMMEDIATE")
        execute_rows(conn, _INSERT_HEAD, rows[i : i + chunk])
        conn.execute("ROLLBACK")
    return (time.perf_counter() - start) / len(rows) * 1e6


async def migrate(url: str) -> None:
    db = DB(url)
    await db.connect()
    try:
        await apply_migrations(db)
    finally:
        await db.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    messages = sample_messages()
    count = args.rows // 100 + 1
    sets = {"benchmark rows": rows_of(ingest_bodies(messages, rng, count), args.rows),
            "SDK-shaped rows": rows_of(sdk_bodies(messages, rng, count), args.rows)}
    adapter = sqlite3.adapters[_NONE_ADAPTER]
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bench.db"
        asyncio.run(migrate(f"sqlite:///{path}"))
        conn = sqlite_connection(path)
        for name, rows in sets.items():
            nones = sum(value is None for row in rows for value in row) / len(rows)
            best = {"default": float("inf"), "adapter": float("inf")}
            for _ in range(args.repeat):
                del sqlite3.adapters[_NONE_ADAPTER]
                best["default"] = min(best["default"], per_row_us(conn, rows))
                sqlite3.adapters[_NONE_ADAPTER] = adapter
                best["adapter"] = min(best["adapter"], per_row_us(conn, rows))
            print(f"{name} ({nones:.1f} None a row): default look-up (baseline) {best['default']:.2f} us/row, "
                  f"adapter for None {best['adapter']:.2f} us/row ({best['default'] / best['adapter']:.2f}x)")
        conn.close()


if __name__ == "__main__":
    main()

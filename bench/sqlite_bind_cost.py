"""The SQLite writer's INSERT of log rows, per row: binding None through sqlite3's adapter
look-up (Python's default) against the adapter for None that server.db registers; and SQLite's
memory statistics on (its default) against off (as the server turns them off at import,
server/_sqlite_memstatus.py).

    .venv/bin/python bench/sqlite_bind_cost.py [--rows 20000] [--repeat 5]

Rows as ingest makes them (`server.ingest_fast`, the id None for SQLite to assign) from bodies
of 100 loghub messages as the ingest benchmark posts them (three None a row: id, exception,
process id) and as the SDK sends them (the id, and the exception on nine logs in ten).
Inserted into the `logs` table of a fresh database with every migration applied, by the
writer's own multi-row statements (`server._sqlite_bulk.execute_rows`), 1,000 rows a
transaction, each rolled back so that every pass inserts into the same table; with and
without the adapter alternately, the best of --repeat passes. Memory statistics can only be
set before SQLite starts, so each setting runs in a process of its own (this script again,
with --child), alternating, the best of --repeat processes. The full-text insert, the WAL
commit and the checkpoints are not in it (see bench/ingest_throughput.py for all of them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if "--memstatus-on" in sys.argv:
    import sqlite3  # before the server's package: SQLite keeps its memory statistics, its default

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import _sqlite_memstatus  # first: it turns them off unless sqlite3 came before

# isort: split
import sqlite3

from bench._common import ingest_bodies, sample_messages, sdk_bodies
from bench.ingest_validate_cost import fast
from server._sqlite_bulk import execute_rows
from server._sqlite_writer import _INSERT_HEAD
from server.db import DB, sqlite_connection
from server.migrate import apply_migrations

_NONE_ADAPTER = (type(None), sqlite3.PrepareProtocol)


def rows_of(bodies: list[bytes], limit: int) -> list[tuple[Any, ...]]:
    """The first `limit` rows the fast path makes of `bodies` (as ingest does)."""
    now = time.time_ns() // 1000
    return [row for body in bodies for row in fast(body, now)][:limit]


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


def measure(rows: int, repeat: int) -> dict[str, float]:
    """{set name and adapter setting: best us per row} in this process."""
    rng = random.Random(1)
    messages = sample_messages()
    count = rows // 100 + 1
    sets = {"benchmark rows": rows_of(ingest_bodies(messages, rng, count), rows),
            "SDK-shaped rows": rows_of(sdk_bodies(messages, rng, count), rows)}
    adapter = sqlite3.adapters[_NONE_ADAPTER]
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bench.db"
        asyncio.run(migrate(f"sqlite:///{path}"))
        conn = sqlite_connection(path)
        for name, made in sets.items():
            for _ in range(repeat):
                for setting in ("default look-up", "adapter for None"):
                    if setting == "adapter for None":
                        sqlite3.adapters[_NONE_ADAPTER] = adapter
                    else:
                        del sqlite3.adapters[_NONE_ADAPTER]
                    key = f"{name}|{setting}"
                    best[key] = min(best.get(key, float("inf")), per_row_us(conn, made))
        conn.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help="measure in this process and print JSON")
    parser.add_argument("--memstatus-on", action="store_true", help="(with --child) keep SQLite's memory statistics")
    args = parser.parse_args()
    if args.child:
        assert _sqlite_memstatus.MEMSTATUS_OFF is not args.memstatus_on
        print(json.dumps(measure(args.rows, 2)))
        return
    best: dict[str, dict[str, float]] = {"on": {}, "off": {}}
    for _ in range(args.repeat):
        for memstatus in ("on", "off"):
            cmd = [sys.executable, __file__, "--child", "--rows", str(args.rows)]
            found = json.loads(subprocess.run(cmd + (["--memstatus-on"] if memstatus == "on" else []),
                                              capture_output=True, text=True, check=True).stdout)
            for key, us in found.items():
                best[memstatus][key] = min(best[memstatus].get(key, float("inf")), us)
    for name in ("benchmark rows", "SDK-shaped rows"):
        base = best["on"][f"{name}|default look-up"]
        cells = [f"{label} {best[m][f'{name}|{setting}']:.2f}" for m, setting, label in (
            ("on", "default look-up", "statistics on, default look-up (baseline)"),
            ("on", "adapter for None", "on, adapter"),
            ("off", "default look-up", "off, default look-up"),
            ("off", "adapter for None", "off, adapter (the server)"))]
        print(f"{name}: " + ", ".join(cells) + f" us/row ({base / best['off'][f'{name}|adapter for None']:.2f}x)")


if __name__ == "__main__":
    main()

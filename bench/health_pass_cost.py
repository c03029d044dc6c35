"""The SQLite health aggregator's counts, per log: a GROUP BY (the baseline) against the
aggregator's upserts into its temporary table (server.health_aggregate).

    .venv/bin/python bench/health_pass_cost.py [--rows 200000] [--repeat 5]

A fresh database with every migration applied and --rows logs as ingest stores them (loghub
messages, random services and levels, timestamps over a minute); then, on a connection set up
as the aggregator's, the counts of the whole id range both ways, alternating, the best of
--repeat passes each. Both must give the same counts (checked first).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ingest_bodies, sample_messages
from bench.sqlite_bind_cost import migrate, rows_of
from server import health_aggregate
from server._sqlite_bulk import execute_rows
from server._sqlite_writer import _INSERT_HEAD
from server.db import DB

# The aggregator's counts query before it counted into a table (and PostgreSQL's still).
GROUP_BY = health_aggregate._COUNTS.format(a="?", b="?", least="min")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = rows_of(ingest_bodies(sample_messages(), random.Random(1), args.rows // 100 + 1), args.rows)
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bench.db"
        asyncio.run(migrate(f"sqlite:///{path}"))
        aggregator = health_aggregate.HealthAggregator(DB(f"sqlite:///{path}"), enabled=True, interval_s=1)
        aggregator._open_sqlite()
        conn = aggregator._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        execute_rows(conn, _INSERT_HEAD, rows)
        conn.execute("COMMIT")
        span = (0, len(rows))

        def group_by() -> list[tuple[object, ...]]:
            return conn.execute(GROUP_BY, span).fetchall()

        def upsert() -> list[tuple[object, ...]]:
            conn.execute("DELETE FROM temp.pass_counts")
            conn.execute(aggregator._counts, span)
            return conn.execute(health_aggregate._SQLITE_COUNTS).fetchall()

        assert sorted(group_by()) == sorted(upsert())
        best = {"group_by": float("inf"), "upsert": float("inf")}
        for _ in range(args.repeat):
            for name, fn in (("group_by", group_by), ("upsert", upsert)):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], (time.perf_counter() - start) / len(rows) * 1e6)
        groups = len(group_by())
        conn.close()
    print(f"{len(rows):,} logs, {groups} groups: GROUP BY (baseline) {best['group_by']:.2f} us/log, "
          f"upserts into the pass table {best['upsert']:.2f} us/log ({best['group_by'] / best['upsert']:.2f}x)")


if __name__ == "__main__":
    main()

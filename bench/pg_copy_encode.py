"""The PostgreSQL writer's COPY: the Python side's CPU per log, asyncpg's encoder against C's.

    .venv/bin/python bench/pg_copy_encode.py [--bodies 50] [--repeat 7]

The COPY records of `--bodies` bodies of 100 loghub messages, made as requests make them
(`server.ingest_fast`, then `server._pg_writer.prepare_copy`), copied into a fresh table like
`logs` (no indexes: the database's side is not what this measures) by asyncpg's
`copy_records_to_table` (the baseline) and as `server._speedups.copy_data`'s binary COPY data
(encoding included), alternating; this thread's CPU time per log (`time.thread_time`: encoding,
the protocol and the socket writes; the GIL is held for all of it), best of --repeat. Both
tables must hold the same rows (checked first).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._common import PG_ADMIN_URL, ingest_bodies, sample_messages
from server._pg_writer import COPY_COLUMNS, COPY_KINDS, prepare_copy
from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits
from server.native import copy_data

LIMITS = Limits(32768, 16384, 5, 65536)
_TYPES = {"q": "bigint", "h": "smallint", "t": "text", "j": "jsonb"}


def records(bodies: list[bytes]) -> list[list[Any]]:
    now = time.time_ns() // 1000
    out = []
    for body in bodies:
        payload = fast_payload(body)
        assert payload is not None
        rows = fast_rows(payload.logs, 1, "prod", now, LIMITS, [])
        assert rows is not None
        out.extend(prepare_copy(rows).records)
    for i, record in enumerate(out, 1):
        record[0] = i
    return out


async def main(n_bodies: int, repeat: int) -> None:
    if copy_data is None:
        raise SystemExit("server._speedups is not built: reinstall with a C compiler (pip install -e .)")
    data = records(ingest_bodies(sample_messages(), random.Random(1), n_bodies))
    columns = ", ".join(f"{name} {_TYPES[kind]}" for name, kind in zip(COPY_COLUMNS, COPY_KINDS, strict=True))
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f"CREATE TEMP TABLE by_asyncpg ({columns}); CREATE TEMP TABLE by_c ({columns})")

        async def by_asyncpg() -> None:
            await conn.copy_records_to_table("by_asyncpg", records=data, columns=COPY_COLUMNS)

        async def by_c() -> None:
            assert copy_data is not None
            await conn.copy_to_table("by_c", source=memoryview(copy_data(data, COPY_KINDS)), columns=COPY_COLUMNS,
                                     format="binary")

        await by_asyncpg()
        await by_c()
        assert await conn.fetchval("SELECT count(*) FROM ((TABLE by_asyncpg EXCEPT ALL TABLE by_c) "
                                   "UNION ALL (TABLE by_c EXCEPT ALL TABLE by_asyncpg)) d") == 0
        best = {"asyncpg": float("inf"), "C": float("inf"), "encoding": float("inf")}
        for _ in range(repeat):
            started = time.thread_time()
            copy_data(data, COPY_KINDS)
            best["encoding"] = min(best["encoding"], (time.thread_time() - started) / len(data) * 1e6)
            for label, copy in (("asyncpg", by_asyncpg), ("C", by_c)):
                await conn.execute("TRUNCATE by_asyncpg, by_c")
                started = time.thread_time()
                await copy()
                best[label] = min(best[label], (time.thread_time() - started) / len(data) * 1e6)
    finally:
        await conn.close()
    print(f"COPY of {len(data)} logs, this thread's CPU per log (best of {repeat}): "
          f"asyncpg's copy_records_to_table (baseline) {best['asyncpg']:.2f} us, "
          f"server._speedups.copy_data {best['C']:.2f} us ({best['asyncpg'] / best['C']:.1f}x less; "
          f"its encoding alone {best['encoding']:.2f} us)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bodies", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.bodies, args.repeat))

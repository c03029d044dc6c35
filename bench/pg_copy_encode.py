"""The PostgreSQL writer's COPY: the Python side's CPU per log, asyncpg's encoder against C's.

    .venv/bin/python bench/pg_copy_encode.py [--bodies 50] [--repeat 7]

The rows of `--bodies` bodies of 100 loghub messages, made as requests make them
(`server.ingest_fast`, then `server._pg_writer.prepare_copy`), copied into a fresh table like
`logs` (no indexes: the database's side is not what this measures) as the writer does without
the C speed-ups (`copy_records`, then asyncpg's `copy_records_to_table`: the baseline) and with
them (`copy_stream`: `server._speedups.copy_rows`), alternating; this thread's CPU time per log
(`time.thread_time`: the records or the stream made, the protocol and the socket writes; the GIL
is held for all of it), best of --repeat. Both tables must hold the same rows (checked first).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._common import PG_ADMIN_URL, ingest_bodies, sample_messages
from server._pg_writer import COPY_COLUMNS, COPY_KINDS, CopyBatch, copy_records, copy_stream, prepare_copy
from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits
from server.native import built

LIMITS = Limits(32768, 16384, 5, 65536)
_TYPES = {"q": "bigint", "h": "smallint", "t": "text", "j": "jsonb"}


def batches(bodies: list[bytes]) -> list[CopyBatch]:
    now = time.time_ns() // 1000
    out = []
    for body in bodies:
        payload = fast_payload(body)
        assert payload is not None
        rows = fast_rows(payload.logs, 1, "prod", now, LIMITS, [])
        assert rows is not None
        out.append(prepare_copy(rows))
    return out


async def main(n_bodies: int, repeat: int) -> None:
    if not built:
        raise SystemExit("server._speedups is not built: reinstall with a C compiler (pip install -e .)")
    data = batches(ingest_bodies(sample_messages(), random.Random(1), n_bodies))
    n = sum(len(b.rows) for b in data)
    columns = ", ".join(f"{name} {_TYPES[kind]}" for name, kind in zip(COPY_COLUMNS, COPY_KINDS, strict=True))
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f"CREATE TEMP TABLE by_asyncpg ({columns}); CREATE TEMP TABLE by_c ({columns})")

        async def by_asyncpg() -> None:
            await conn.copy_records_to_table("by_asyncpg", records=copy_records(data, 1), columns=COPY_COLUMNS)

        async def by_c() -> None:
            await conn.copy_to_table("by_c", source=memoryview(copy_stream(data, 1)), columns=COPY_COLUMNS, format="binary")

        await by_asyncpg()
        await by_c()
        assert await conn.fetchval("SELECT count(*) FROM ((TABLE by_asyncpg EXCEPT ALL TABLE by_c) "
                                   "UNION ALL (TABLE by_c EXCEPT ALL TABLE by_asyncpg)) d") == 0
        best = {"asyncpg": float("inf"), "C": float("inf"), "encoding": float("inf")}
        for _ in range(repeat):
            started = time.thread_time()
            copy_stream(data, 1)
            best["encoding"] = min(best["encoding"], (time.thread_time() - started) / n * 1e6)
            for label, copy in (("asyncpg", by_asyncpg), ("C", by_c)):
                await conn.execute("TRUNCATE by_asyncpg, by_c")
                started = time.thread_time()
                await copy()
                best[label] = min(best[label], (time.thread_time() - started) / n * 1e6)
    finally:
        await conn.close()
    print(f"COPY of {n} logs, this thread's CPU per log (best of {repeat}): "
          f"copy_records + asyncpg's copy_records_to_table (baseline) {best['asyncpg']:.2f} us, "
          f"copy_stream (server._speedups.copy_rows) {best['C']:.2f} us ({best['asyncpg'] / best['C']:.1f}x less; "
          f"making the stream alone {best['encoding']:.2f} us)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bodies", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.bodies, args.repeat))

"""Ingest throughput through real HTTP, next to the raw driver insert rate, and query latency.

    .venv/bin/python bench/ingest_throughput.py [--seconds 15] [--warmup 5] [--query-rows 1000000] [--only sqlite|postgresql]

For each database (SQLite file, PostgreSQL at TEST_POSTGRES_URL):
1. baseline: the driver's own bulk insert (SQLite executemany / asyncpg COPY) into the same
   logs table (SQLite's FTS table, PostgreSQL's word text and word blocks included), 20,000 rows
   per transaction;
2. ingest: the server as deployed (`python -m server run --no-dashboard`: one uvicorn worker,
   uvloop, httptools, access log on) with POST /ingest, batches of 100 logs
   (plain JSON, loghub messages), 128 keep-alive connections (--connections: the peak of both databases' throughput; 64 before 2026-12-05, 08:15 UTC); after --warmup
   seconds (5) of unmeasured load, logs/s over --seconds and the server's peak RSS; --rounds (3)
   such runs, each on a fresh database and server, and their median (the machine is shared);
3. query: 1M logs over 24 h stored straight through the driver, then
   GET /api/apps/1/logs?level=ERROR&q=WORD&since=1h through HTTP, p50/p95 over 200 queries.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    database,
    free_port,
    ingest_bodies,
    ingest_server,
    machine_speed_ms,
    make_logs,
    peak_rss_mb,
    post_load,
    provision,
    sample_messages,
    server,
    server_env,
)
from server._pg_writer import copy_logs
from server.db import DB
from server.ingest_validate import LOG_COLUMNS, Limits, validate_record
from server.migrate import apply_migrations

LIMITS = Limits(32768, 16384, 5, 65536)


def rows_for(logs: list[dict], app_id: int, first_id: int) -> list[tuple]:
    now = time.time_ns() // 1000
    rows = []
    for i, log in enumerate(logs):
        row = validate_record(log, app_id, "prod", now, LIMITS)
        rows.append((first_id + i, *row[1:]))
    return rows


async def bulk_insert(url: str, rows: list[tuple], chunk: int = 20_000) -> float:
    """Insert rows with the driver's bulk path; returns rows/s."""
    db = DB(url)
    await db.connect()
    try:
        await apply_migrations(db)
        async with db.raw() as conn:
            start = time.perf_counter()
            for i in range(0, len(rows), chunk):
                part = rows[i : i + chunk]
                if db.dialect == "sqlite":
                    await conn.execute("BEGIN IMMEDIATE")
                    await conn.executemany(
                        f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))})",
                        part)
                    await conn.execute("INSERT INTO logs_fts (rowid, message) SELECT id, message FROM logs "
                                       "WHERE id >= ? AND id <= ?", (part[0][0], part[-1][0]))
                    await conn.execute("COMMIT")
                else:
                    async with conn.transaction():
                        await copy_logs(conn, part, part[0][0])
            elapsed = time.perf_counter() - start
            if db.dialect == "postgresql":
                await conn.execute("SELECT setval('logs_id_seq', (SELECT MAX(id) FROM logs))")
                await conn.execute("ANALYZE logs")
            else:
                await conn.execute("ANALYZE")
        return len(rows) / elapsed
    finally:
        await db.disconnect()


def ingest_run(kind: str, seconds: float, messages: list, connections: int, warmup: float, rounds: int) -> dict[str, Any]:
    rng = random.Random(1)
    baseline_logs = make_logs(messages, 200_000, time.time() - 3600, 3600, rng)
    with database(kind) as url:
        baseline = asyncio.run(bulk_insert(url, rows_for(baseline_logs, 999, 1)))
    rates, rss, failed = [], [], 0
    for _ in range(rounds):  # each round: a fresh database and server
        bodies = ingest_bodies(messages, rng)
        with ingest_server(kind) as (proc, port, key):
            # Unmeasured: connections, prepared statements and caches warm up (steady state is the figure).
            post_load(port, key, bodies, warmup, connections)
            ok, bad, elapsed = post_load(port, key, bodies, seconds, connections)
            rss.append(peak_rss_mb(proc.pid))
        rates.append(ok * 100 / elapsed)
        failed += bad
        print(f"[{kind}]   round {len(rates)}: {rates[-1]:,.0f} logs/s, peak RSS {rss[-1]:.0f} MB", flush=True)
    return {"baseline_rows_s": baseline, "ingest_logs_s": statistics.median(rates), "failed_requests": failed,
            "peak_rss_mb": max(rss), "rounds": rates}


def query_run(kind: str, n_rows: int, messages: list) -> dict[str, float]:
    rng = random.Random(2)
    now = time.time()
    error_words = sorted({w for lvl, _, m in messages if lvl == "ERROR" for w in m.split() if w.isalpha() and len(w) > 4})
    with database(kind) as url, tempfile.TemporaryDirectory() as data_dir:
        env = server_env(url, data_dir, free_port())
        _, token = provision(env)  # app 1
        logs = make_logs(messages, n_rows, now - 86400, 86400, rng)
        asyncio.run(bulk_insert(url, rows_for(logs, 1, 1)))
        del logs
        latencies = []
        with server(env), httpx.Client(base_url=f"http://127.0.0.1:{env['PORT']}",
                                        headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for i in range(220):
                word = error_words[rng.randrange(len(error_words))]
                start = time.perf_counter()
                r = http.get("/api/apps/1/logs", params={"level": "ERROR", "q": word, "since": "1h", "limit": 100})
                took = (time.perf_counter() - start) * 1000
                r.raise_for_status()
                if i >= 20:  # warm-up
                    latencies.append(took)
    latencies.sort()
    return {"query_p50_ms": statistics.median(latencies), "query_p95_ms": latencies[int(len(latencies) * 0.95) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--query-rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--skip-ingest", action="store_true", help="only the query latency part")
    parser.add_argument("--connections", type=int, default=128, help="concurrent keep-alive clients (128: where both databases' throughput peaks, bench/ingest_cpu.py --connections 64 128 256)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs (fresh database and server each); the median counts")
    args = parser.parse_args()
    messages = sample_messages()
    for kind in ("sqlite", "postgresql"):
        if args.only and kind != args.only:
            continue
        if not args.skip_ingest:
            print(f"[{kind}] machine speed before: sum(range(10**6)) in {machine_speed_ms():.1f} ms", flush=True)
            report_ingest(kind, ingest_run(kind, args.seconds, messages, args.connections, args.warmup, args.rounds), args.connections)
            print(f"[{kind}] machine speed after: sum(range(10**6)) in {machine_speed_ms():.1f} ms", flush=True)
        q = query_run(kind, args.query_rows, messages)
        print(f"[{kind}] query level=ERROR + keyword + 1h over {args.query_rows:,} logs: "
              f"p50 {q['query_p50_ms']:.1f} ms, p95 {q['query_p95_ms']:.1f} ms (target p95 <= 50)", flush=True)


def report_ingest(kind: str, ing: dict[str, Any], connections: int) -> None:
    print(f"[{kind}] raw driver bulk insert (baseline): {ing['baseline_rows_s']:,.0f} rows/s", flush=True)
    print(f"[{kind}] HTTP ingest, batches of 100, 1 worker, {connections} clients, median of {len(ing['rounds'])} rounds: "
          f"{ing['ingest_logs_s']:,.0f} logs/s "
          f"({ing['ingest_logs_s'] / ing['baseline_rows_s']:.2f}x baseline; target >= 100,000), "
          f"non-2xx: {ing['failed_requests']}, highest server peak RSS {ing['peak_rss_mb']:.0f} MB (target <= 200)", flush=True)


if __name__ == "__main__":
    main()

"""What one PostgreSQL commit of the log writer costs the database, per log, by statement.

    .venv/bin/python bench/pg_commit_cost.py [--batches 16] [--commits 100] [--rounds 2]

Batches of 100 loghub messages are validated and prepared as requests do (server.ingest),
then written `--batches` at a time by `server._pg_writer.commit_postgres` on one connection
of a fresh database; the backend's CPU time (from /proc, so the database must run on this
machine) and the wall time of each statement are summed and divided by the logs written.

Baseline in the same run: the word-block statement this writer used before 2026-12-05, which
made PostgreSQL split and de-duplicate the rows' whole word texts (`string_to_array` +
`DISTINCT`), against the current one (the distinct words worked out in Python, split by
PostgreSQL), each inserting the same blocks into its own fresh table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._common import PG_ADMIN_URL, make_logs, sample_messages
from server._pg_writer import _INSERT_BLOCKS, commit_postgres, prepare_copy
from server.accounts import ensure_user_by_email
from server.apps import create_app
from server.db import DB
from server.fulltext import BLOCK_WORD_MAX, distinct_words, word_text
from server.ingest_validate import Limits, validate_record
from server.migrate import apply_migrations
from server.writer import Batch

LIMITS = Limits(32768, 16384, 5, 65536)
_OLD_BLOCKS = (
    "INSERT INTO b (app_id, first_id, last_id, min_ts, max_ts, words) "
    "SELECT b.app_id, b.first_id, b.last_id, b.min_ts, b.max_ts, ARRAY("
    f"SELECT DISTINCT w FROM unnest(string_to_array(b.texts, ' ')) AS w WHERE w <> '' AND length(w) <= {BLOCK_WORD_MAX}) "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) "
    "AS b (app_id, first_id, last_id, min_ts, max_ts, texts)"
)
_TABLE = ("CREATE TABLE b (app_id BIGINT, first_id BIGINT, last_id BIGINT, min_ts BIGINT, max_ts BIGINT, "
          "words TEXT[]{collate} NOT NULL, PRIMARY KEY (app_id, first_id)); CREATE INDEX ON b USING GIN (words)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timed:
    """The connection, summing the backend's CPU and the wall time of each statement kind."""

    def __init__(self, conn: Any, pid: int, totals: Counter[str]) -> None:
        self._conn, self._pid, self.totals = conn, pid, totals

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("copy_records_to_table", "execute", "fetchval", "fetchrow", "fetch"):
            return attr

        async def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = cpu_seconds(self._pid), time.perf_counter()
            result = await attr(*args, **kwargs)
            sql = str(args[0]) if args else ""
            kind = ("COPY logs" if name == "copy_records_to_table" else "word blocks, keys, reports" if "log_word_blocks" in sql
                    else "lock, keys and ids" if "advisory" in sql else sql[:30])
            self.totals[f"{kind} (backend CPU)"] += cpu_seconds(self._pid) - cpu
            self.totals[f"{kind} (wall)"] += time.perf_counter() - wall
            return result
        return timed


async def fresh_database(name: str) -> str:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def commits(bodies: list[list[dict[str, Any]]], per_commit: int, n_commits: int) -> None:
    url = await fresh_database("sl_bench_commit_cost")
    db = DB(url)
    await db.connect()
    totals: Counter[str] = Counter()
    try:
        await apply_migrations(db)
        # App 1 with its active key 1: the writer stores a batch only when its key is active.
        await create_app(db, await ensure_user_by_email(db, "bench@example.com"), "bench")
        async with db.raw() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            prepare = 0.0
            for c in range(n_commits):
                batches = []
                for j in range(per_commit):
                    started = time.perf_counter()
                    requests: list[tuple[int, str, int, int]] = []
                    now = time.time_ns() // 1000
                    logs = bodies[(c * per_commit + j) % len(bodies)]
                    rows = [validate_record(log, 1, "prod", now, LIMITS, requests, i) for i, log in enumerate(logs)]
                    batch = Batch(1, 1, rows, 0, None, None, requests or None)
                    batch.copy = prepare_copy(rows, requests)
                    prepare += time.perf_counter() - started
                    batches.append(batch)
                cpu, wall = cpu_seconds(pid), time.perf_counter()
                await commit_postgres(Timed(conn, pid, totals), batches, int(time.time()), lock_key=1,
                                      mark_duplicate=lambda *_: None)
                totals["whole commit (backend CPU)"] += cpu_seconds(pid) - cpu
                totals["whole commit (wall)"] += time.perf_counter() - wall
    finally:
        await db.disconnect()
    n = per_commit * 100 * n_commits
    print(f"commits of {per_commit} batches of 100 logs, {n_commits} commits; us per log:")
    print(f"  {'validation + prepare_copy (Python, in the requests)':55s} {prepare / n * 1e6:6.2f}")
    for key in sorted(totals):
        print(f"  {key:55s} {totals[key] / n * 1e6:6.2f}")


async def blocks(bodies: list[list[dict[str, Any]]], per_commit: int, n_commits: int) -> None:
    url = await fresh_database("sl_bench_commit_cost")
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        groups = [[log["message"] for j in range(per_commit) for log in bodies[(c * per_commit + j) % len(bodies)]]
                  for c in range(n_commits)]
        n = sum(map(len, groups))
        variants = (
            ("before: PostgreSQL splits and de-duplicates the word texts", _OLD_BLOCKS, "",
             lambda ms: "".join(word_text(m) for m in ms)),
            ("now: the distinct words from Python, bytewise collation", _INSERT_BLOCKS.replace("log_word_blocks", "b"),
             ' COLLATE "C"', lambda ms: " ".join(distinct_words(ms))),
        )
        print(f"word block statement alone, blocks of {per_commit * 100} logs; us per log:")
        for label, sql, collate, make in variants:
            await conn.execute("DROP TABLE IF EXISTS b")
            await conn.execute(_TABLE.format(collate=collate))
            python = 0.0
            cpu, wall = cpu_seconds(pid), time.perf_counter()
            for i, messages in enumerate(groups):
                started = time.perf_counter()
                text = make(messages)
                python += time.perf_counter() - started
                await conn.execute(sql, [1], [i * 10_000], [i * 10_000 + len(messages) - 1], [0], [1], [text])
            print(f"  {label:60s} backend CPU {(cpu_seconds(pid) - cpu) / n * 1e6:5.2f}, "
                  f"wall {(time.perf_counter() - wall) / n * 1e6:5.2f}, Python {python / n * 1e6:5.2f}")
    finally:
        await conn.close()
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute('DROP DATABASE IF EXISTS "sl_bench_commit_cost" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=16, help="batches of 100 logs per commit")
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(1)
    messages = sample_messages()
    bodies = [make_logs(messages, 100, time.time() - 60, 60, rng) for _ in range(50)]
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}")
        asyncio.run(commits(bodies, args.batches, args.commits))
        asyncio.run(blocks(bodies, args.batches, args.commits))


if __name__ == "__main__":
    main()

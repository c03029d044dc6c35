"""Health metrics: API latency over 30 days of aggregates, and ingest with aggregation on vs off.

    .venv/bin/python bench/health_api.py [--seconds 10] [--rounds 2] [--only sqlite|postgresql] [--skip-ingest]

For each database (SQLite file, PostgreSQL at TEST_POSTGRES_URL), fresh each time:
1. ingest: the server as deployed (`python -m server run --no-dashboard`) with POST /ingest, batches of 100 logs
   (loghub messages, 40% of them request records with method/route/status_code/duration_ms
   as the SDK middleware sends), 32 keep-alive connections; alternating runs with
   HEALTH_AGGREGATION=false (the baseline) and true, `--rounds` of each; medians and ratio.
2. API: 30 days at 1M logs/day (10 services x 5 routes, 40% requests, ~5% errors) generated
   straight into the aggregate tables as the writer would leave them under the default
   retention (minute rows for the last 7 days, hour and day rows for all 30), then the
   dashboard's queries through HTTP: p50/p95 per query over `--repeat` calls after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    database,
    free_port,
    make_logs,
    post_load,
    provision,
    sample_messages,
    server,
    server_env,
)
from server.health_sketch import bin_of, encode

DAYS, LOGS_PER_DAY, SERVICES, ROUTES_PER_SERVICE, REQUEST_SHARE = 30, 1_000_000, 10, 5, 0.4
LEVELS = ((10, 0.10), (20, 0.74), (30, 0.11), (40, 0.04), (50, 0.01))
ROUTES = ("GET /items/{id}", "POST /orders", "GET /search", "GET /users/{id}/cart", "DELETE /sessions/{id}")


def request_logs(messages: list[Any], n: int, rng: random.Random) -> list[dict[str, Any]]:
    logs = make_logs(messages, n, time.time() - 60, 60, rng)
    for log in logs:
        if rng.random() < REQUEST_SHARE:
            route = rng.choice(ROUTES)
            method, template = route.split(" ", 1)
            log["attributes"] = {"method": method, "route": template, "path": template.replace("{id}", "7"),
                                 "status_code": 200, "duration_ms": round(rng.lognormvariate(math.log(30), 0.9), 3)}
    return logs


def ingest_once(kind: str, seconds: float, bodies: list[bytes], aggregation: bool, connections: int) -> float:
    with database(kind) as url, tempfile.TemporaryDirectory() as data_dir:
        env = server_env(url, data_dir, free_port(), HEALTH_AGGREGATION=str(aggregation).lower())
        key, _ = provision(env)
        with server(env):
            ok, failed, elapsed = post_load(int(env["PORT"]), key, bodies, seconds, connections)
    if failed:
        print(f"  ({failed} non-2xx answers)", flush=True)
    return ok * 100 / elapsed


def _services() -> list[tuple[str, float, float]]:
    """(name, error share multiplier, median latency ms)."""
    rng = random.Random(5)
    return [(f"svc-{i}", 0.3 + 2.5 * rng.random(), 10 + 200 * rng.random()) for i in range(SERVICES)]


def _add(acc: dict[str, list[Any]], route: str, n: int, total: int, bins: dict[int, int]) -> None:
    found = acc.setdefault(route, [0, 0, {}])
    found[0] += n
    found[1] += total
    for b, c in bins.items():
        found[2][b] = found[2].get(b, 0) + c


def generate(now_s: int, app_id: int = 1) -> dict[str, list[tuple[Any, ...]]]:
    """Aggregate rows for DAYS days ending now, as the writer would leave them (one row per key)."""
    rng = random.Random(9)
    per_service_minute = LOGS_PER_DAY / 1440 / SERVICES
    minute_cut = now_s - 7 * 86400
    first_hour = (now_s - DAYS * 86400) // 3600 * 3600
    out: dict[str, list[tuple[Any, ...]]] = {k: [] for k in TABLES}
    for service, error_mult, median in _services():
        out["services"].append((app_id, service, now_s * 1_000_000))
        routes = [(r, median * (0.5 + rng.random())) for r in ROUTES[:ROUTES_PER_SERVICE]]
        out["routes"].extend((app_id, service, r, now_s * 1_000_000) for r, _ in routes)
        day_counts: dict[tuple[int, int], int] = {}
        days: dict[int, dict[str, list[Any]]] = {}
        for hour in range(first_hour, now_s, 3600):
            hour_counts = {level: 0 for level, _ in LEVELS}
            hour_lat: dict[str, list[Any]] = {}
            for minute in range(hour, hour + 3600, 60):
                keep = minute >= minute_cut
                for level, share in LEVELS:
                    mult = error_mult if level >= 40 else 1.0
                    n = int(per_service_minute * share * mult * (0.7 + 0.6 * rng.random()) + rng.random())
                    if n:
                        hour_counts[level] += n
                        if keep:
                            out["counts"].append((app_id, 60, service, minute, level, n))
                minute_lat: dict[str, list[Any]] = {}
                for route, route_median in routes:
                    n = int(per_service_minute * REQUEST_SHARE / len(routes) * (0.5 + rng.random()) + rng.random())
                    if not n:
                        continue
                    durations = [rng.lognormvariate(math.log(route_median), 0.8) for _ in range(n)]
                    bins: dict[int, int] = {}
                    for d in durations:
                        bins[bin_of(d)] = bins.get(bin_of(d), 0) + 1
                    total = sum(round(d * 1000) for d in durations)
                    for r in (route, "*"):
                        _add(minute_lat, r, n, total, bins)
                for r, (n, total, bins) in minute_lat.items():
                    _add(hour_lat, r, n, total, bins)
                    if keep:
                        out["latency"].append((app_id, 60, service, r, minute, n, total, encode(bins)))
                errors = sum(int(per_service_minute * s * error_mult * 0.9) for lvl, s in LEVELS if lvl >= 40)
                if keep and errors:
                    fp = rng.randrange(8)
                    out["errors"].append((app_id, 60, service, minute, f"error kind {fp} in #", errors,
                                          (minute + 59) * 1_000_000, f"error kind {fp} in 42"))
            day = hour - hour % 86400
            for level, n in hour_counts.items():
                if n:
                    out["counts"].append((app_id, 3600, service, hour, level, n))
                    day_counts[(day, level)] = day_counts.get((day, level), 0) + n
            for r, (n, total, bins) in hour_lat.items():
                out["latency"].append((app_id, 3600, service, r, hour, n, total, encode(bins)))
                _add(days.setdefault(day, {}), r, n, total, bins)
            for fp in range(8):
                out["errors"].append((app_id, 3600, service, hour, f"error kind {fp} in #", 20 + fp,
                                      (hour + 3599) * 1_000_000, f"error kind {fp} in 42"))
        out["counts"].extend((app_id, 86400, service, d, lvl, n) for (d, lvl), n in day_counts.items())
        out["latency"].extend((app_id, 86400, service, r, d, n, t, encode(b))
                              for d, per_route in days.items() for r, (n, t, b) in per_route.items())
    return out


TABLES = {"services": ("health_services", ("app_id", "service", "last_seen")),
          "routes": ("health_routes", ("app_id", "service", "route", "last_seen")),
          "counts": ("health_counts", ("app_id", "res", "service", "start_s", "level", "records")),
          "latency": ("health_latency", ("app_id", "res", "service", "route", "start_s", "requests", "total_us",
                                         "bins")),
          "errors": ("health_errors", ("app_id", "res", "service", "start_s", "fingerprint", "records", "last_ts",
                                       "message"))}


async def store(url: str, data: dict[str, list[tuple[Any, ...]]]) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN")
        for key, (table, cols) in TABLES.items():
            conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", data[key])
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        for key, (table, cols) in TABLES.items():
            await pg.copy_records_to_table(table, records=data[key], columns=cols)
        await pg.execute("VACUUM ANALYZE")
    finally:
        await pg.close()


QUERIES = [
    ("summary (15 min window)", "", {}),
    ("volume 1h / 1m", "/volume", {"since": "1h", "bucket": "1m"}),
    ("volume 24h / 15m", "/volume", {"since": "24h", "bucket": "15m"}),
    ("volume 7d / 1h", "/volume", {"since": "7d", "bucket": "1h"}),
    ("volume 30d / 1d, Europe/Paris", "/volume", {"since": "30d", "bucket": "1d", "tz": "Europe/Paris"}),
    ("error rate 24h / 15m", "/error-rate", {"since": "24h", "bucket": "15m"}),
    ("error rate 30d / 6h", "/error-rate", {"since": "30d", "bucket": "6h"}),
    ("latency by service 1h / 1m", "/latency", {"since": "1h", "bucket": "1m"}),
    ("latency by service 24h / 15m", "/latency", {"since": "24h", "bucket": "15m"}),
    ("latency by service 7d / 1h", "/latency", {"since": "7d", "bucket": "1h"}),
    ("latency by service 30d / 1d", "/latency", {"since": "30d", "bucket": "1d"}),
    ("latency by route, 1 service, 24h / 15m", "/latency", {"since": "24h", "bucket": "15m", "by": "route",
                                                             "service": "svc-3"}),
]


def api_run(kind: str, repeat: int) -> tuple[dict[str, int], list[tuple[str, float, float]], float]:
    with database(kind) as url, tempfile.TemporaryDirectory() as data_dir:
        env = server_env(url, data_dir, free_port())
        _, token = provision(env)  # app 1
        start = time.perf_counter()
        data = generate(int(time.time()))
        asyncio.run(store(url, data))
        sizes = {k: len(v) for k, v in data.items()}
        del data
        print(f"[{kind}] generated and stored {sum(sizes.values()):,} aggregate rows in "
              f"{time.perf_counter() - start:.0f} s: {sizes}", flush=True)
        results, every = [], []
        with server(env), httpx.Client(base_url=f"http://127.0.0.1:{env['PORT']}",
                                        headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for name, path, params in QUERIES:
                took = []
                for i in range(repeat + 3):
                    t0 = time.perf_counter()
                    r = http.get(f"/api/apps/1/health{path}", params=params)
                    elapsed = (time.perf_counter() - t0) * 1000
                    r.raise_for_status()
                    if i >= 3:  # warm-up
                        took.append(elapsed)
                took.sort()
                every.extend(took)
                results.append((name, statistics.median(took), took[math.ceil(0.95 * len(took)) - 1]))
        every.sort()
        return sizes, results, every[math.ceil(0.95 * len(every)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="alternating off/on ingest runs of each")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    messages = sample_messages()
    rng = random.Random(1)
    bodies = [orjson.dumps({"logs": request_logs(messages, 100, rng)}) for _ in range(50)]
    for kind in ("sqlite", "postgresql"):
        if args.only and kind != args.only:
            continue
        if not args.skip_ingest:
            rates: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for aggregation in (False, True):
                    rate = ingest_once(kind, args.seconds, bodies, aggregation, args.connections)
                    rates[aggregation].append(rate)
                    print(f"[{kind}] ingest, aggregation {'on ' if aggregation else 'off'}: {rate:,.0f} logs/s", flush=True)
            off, on = statistics.median(rates[False]), statistics.median(rates[True])
            print(f"[{kind}] ingest medians: off {off:,.0f}, on {on:,.0f} logs/s -> {on / off:.2f}x (target >= 0.9x)",
                  flush=True)
        if not args.skip_api:
            _, results, overall = api_run(kind, args.repeat)
            for name, p50, p95 in results:
                print(f"[{kind}] {name:42s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms", flush=True)
            print(f"[{kind}] all health queries: p95 {overall:.1f} ms (target <= 100)", flush=True)


if __name__ == "__main__":
    main()

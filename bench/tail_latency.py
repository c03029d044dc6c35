"""Live tail benchmark: latency from ingest to tail receipt, and ingest throughput with one
stalled tail subscriber against none (the baseline), measured in the same run.

Starts the real server (uvicorn subprocess, SQLite under a temporary DATA_DIR, HUB_URL as
given), then:
1. latency: `--subscribers` WebSocket tails of one app while ingest runs at `--rate` logs/s
   (batches of 100 every 50 ms) for `--seconds`; latency of a line = client receipt time -
   its `received_at` (stamped by the server before the commit, so this is an upper bound of
   commit -> receipt: it includes the group commit's wait);
2. throughput: `--rounds` alternating rounds of maximal ingest (4 concurrent clients, 500
   logs per request) with no tail, and with one tail that never reads (its socket stalls).

    .venv/bin/python bench/tail_latency.py [--hub-url memory://] [--rate 2000] [--subscribers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def provision(database_url: str) -> tuple[str, str, int]:
    from server.accounts import create_api_token, upsert_user
    from server.apps import create_app
    from server.db import DB

    db = DB(database_url)
    await db.connect()
    try:
        user = await upsert_user(db, issuer="https://bench.test", sub="bench", email="bench@example.com")
        token, _ = await create_api_token(db, user, "bench")
        app, key, _ = await create_app(db, user, "bench", None, "bench")
        return token, key, int(app["id"])
    finally:
        await db.disconnect()


def batch(n: int, tag: str) -> bytes:
    now = time.time()
    return orjson.dumps({"logs": [{"timestamp": now, "level": "INFO", "service": "bench",
                                   "message": f"{tag} request {i} served in 12 ms"} for i in range(n)]})


async def subscriber(url: str, headers: dict[str, str], latencies: list[float], ready: asyncio.Event,
                     counter: list[int]) -> None:
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.recv()
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        async for message in ws:
            now = time.time()
            frame = orjson.loads(message)
            for line in frame.get("logs", ()):
                latencies.append(now - _received(line))


def _received(line: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(line["received_at"]).timestamp()


async def latency_phase(args: argparse.Namespace, base: str, ws_url: str, key: str, token: str) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    ready = asyncio.Event()
    counter = [0, args.subscribers]
    subs = [asyncio.create_task(subscriber(ws_url, headers, latencies, ready, counter)) for _ in range(args.subscribers)]
    await asyncio.wait_for(ready.wait(), 30)
    per_request = 100
    interval = per_request / args.rate
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}",
                                                         "Content-Type": "application/json"}) as http:
        start = time.perf_counter()
        sent = 0
        pending: set[asyncio.Task[Any]] = set()
        while time.perf_counter() - start < args.seconds:
            pending.add(asyncio.create_task(http.post("/ingest", content=batch(per_request, "lat"))))
            sent += per_request
            await asyncio.sleep(max(0.0, start + (sent / per_request) * interval - time.perf_counter()))
        await asyncio.gather(*pending)
    deadline = time.monotonic() + 10
    while len(latencies) < sent * args.subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for task in subs:
        task.cancel()
    await asyncio.gather(*subs, return_exceptions=True)
    print(f"  delivered {len(latencies)} of {sent * args.subscribers} line receipts")
    return latencies


async def throughput_round(base: str, key: str, seconds: float) -> float:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}",
                                                                     "Content-Type": "application/json"}) as http:
        body = batch(500, "tp")
        done = 0
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = await http.post("/ingest", content=body)
                if r.status_code == 202:
                    done += 500
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(4)))
        return done / (time.perf_counter() - start)


async def throughput_phase(
    args: argparse.Namespace, base: str, ws_url: str, key: str, token: str,
) -> tuple[float, float, float]:
    none: list[float] = []
    stalled: list[float] = []
    for _ in range(args.rounds):
        none.append(await throughput_round(base, key, args.round_seconds))
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_queue=1,
                           compression=None) as ws:
            await ws.recv()  # ready; from now on this client never reads
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
                # Warm-up (not measured): the socket buffers fill and the hub starts skipping for it.
                before = (await http.get("/healthz")).json()["live_tail"]["skipped_lines"]
                while (await http.get("/healthz")).json()["live_tail"]["skipped_lines"] == before:
                    await http.post("/ingest", content=batch(500, "warm"), headers={"Content-Type": "application/json"})
                stalled.append(await throughput_round(base, key, args.round_seconds))
                health = (await http.get("/healthz")).json()["live_tail"]
        print(f"  round: none {none[-1]:,.0f} logs/s, stalled {stalled[-1]:,.0f} logs/s, "
              f"skipped so far {health['skipped_lines']:,} lines")
    ratios = [s / n for n, s in zip(none, stalled, strict=True)]
    return statistics.median(none), statistics.median(stalled), statistics.median(ratios)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub-url", default="memory://")
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=3)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="tail_bench_"))
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(data), "SECRET_KEY": "bench", "HUB_URL": args.hub_url, "DASHBOARD": "false",
           "INGEST_RATE_LIMIT": "0", "TAIL_MAX_PER_USER": str(args.subscribers + 10), "API_RATE_LIMIT": "0"}
    command = [sys.executable, "-m", "uvicorn", "server.asgi:app", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: ASYNC220 - started before any measurement
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:  # noqa: ASYNC210 - start-up wait only
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        token, key, app_id = await provision(f"sqlite:///{data / 'sentry_logger.db'}")
        ws_url = f"{ws_base}/ws/tail?app_id={app_id}"
        print(f"live tail bench: hub {args.hub_url}, {args.subscribers} subscribers, {args.rate} logs/s, "
              f"{args.seconds:g} s")
        lat = sorted(await latency_phase(args, base, ws_url, key, token))
        p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
        print(f"latency received_at -> tail receipt: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000:.1f} ms "
              f"(target p99 <= 100 ms)")
        none, stalled, ratio = await throughput_phase(args, base, ws_url, key, token)
        print(f"ingest throughput (median of {args.rounds} alternating rounds): no tail {none:,.0f} logs/s, "
              f"one stalled tail {stalled:,.0f} logs/s; median paired ratio {ratio:.2f}x (target >= 0.95x)")
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    asyncio.run(main())

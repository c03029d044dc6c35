"""Parsing and validating an ingest body, per log: the fast path against the general one.

    .venv/bin/python bench/ingest_validate_cost.py [--bodies 200] [--repeat 7]

Bodies of 100 loghub messages as the ingest benchmark posts them (timestamp, level, service,
logger, message, small attributes), and as the SDK sends them with an exception on one log in
ten. Each is parsed and validated into rows by the general path (orjson, then
`server.ingest_validate.validate_record` per record: the baseline) and by the fast path
(`server.ingest_fast`: msgspec into structs, then `fast_rows`), in one process, alternating;
the best of --repeat passes. Both must make the same rows (checked first).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ingest_bodies, sample_messages, sdk_bodies
from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits, validate_record

LIMITS = Limits(32768, 16384, 5, 65536)


def general(body: bytes, now: int) -> list[tuple[Any, ...]]:
    requests: list[tuple[int, str, int, int]] = []
    return [validate_record(r, 1, "prod", now, LIMITS, requests, i) for i, r in enumerate(orjson.loads(body)["logs"])]


def fast(body: bytes, now: int) -> list[tuple[Any, ...]]:
    payload = fast_payload(body)
    rows = None if payload is None else fast_rows(payload.logs, 1, "prod", now, LIMITS, [])
    assert rows is not None, "the fast path stepped aside"
    return rows


def per_log_us(fn: Any, bodies: list[bytes], now: int, logs: int) -> float:
    start = time.perf_counter()
    for body in bodies:
        fn(body, now)
    return (time.perf_counter() - start) / logs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bodies", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    messages = sample_messages()
    now = time.time_ns() // 1000
    plain = ingest_bodies(messages, rng, args.bodies)
    sdk = sdk_bodies(messages, rng, args.bodies)
    for name, bodies in (("benchmark bodies", plain), ("SDK-shaped bodies", sdk)):
        assert all(general(b, now) == fast(b, now) for b in bodies)
        count = sum(len(orjson.loads(b)["logs"]) for b in bodies)
        best = {"general": float("inf"), "fast": float("inf")}
        for _ in range(args.repeat):
            best["general"] = min(best["general"], per_log_us(general, bodies, now, count))
            best["fast"] = min(best["fast"], per_log_us(fast, bodies, now, count))
        print(f"{name}: general path (orjson + validate_record, baseline) {best['general']:.2f} us/log, "
              f"fast path (msgspec + fast_rows) {best['fast']:.2f} us/log ({best['general'] / best['fast']:.2f}x)")


if __name__ == "__main__":
    main()

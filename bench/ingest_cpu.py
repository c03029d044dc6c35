"""Where ingest's CPU goes: microseconds of CPU per log in each process and thread, at load.

    .venv/bin/python bench/ingest_cpu.py [--only sqlite|postgresql] [--connections 32 64 128] [--seconds 10]

The server, database and load generator share this machine's cores, so the sum of their CPU
per log sets a ceiling on logs/s that no tuning of one part lifts: cores / (us per log).
For each database and client count: a fresh database and server (as bench/ingest_throughput.py:
`python -m server run --no-dashboard`, one worker, batches of 100 loghub messages over keep-alive
connections), 4 s unmeasured, then --seconds measured; CPU from /proc (utime + stime) of the
server's threads (the event loop is the main thread; SQLite's writer and checkpointer are
others), of every `postgres` process (the database's backends and its background writers),
and of this load generator.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ingest_bodies, ingest_server, post_load, sample_messages

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat_path: Path) -> float:
    """utime + stime in seconds from a /proc stat file (0 when it is gone)."""
    try:
        fields = stat_path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _threads(pid: int) -> dict[int, float]:
    return {int(t.name): _cpu(t / "stat") for t in Path(f"/proc/{pid}/task").iterdir()}


def _postgres() -> dict[int, float]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    found[int(proc.name)] = _cpu(proc / "stat")
            except OSError:
                continue
    return found


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(kind: str, connections: int, seconds: float, messages: list[tuple[str, str, str]]) -> None:
    rng = random.Random(1)
    bodies = ingest_bodies(messages, rng)
    with ingest_server(kind) as (proc, port, key):
        post_load(port, key, bodies, 4, connections)
        threads0, pg0, client0 = _threads(proc.pid), _postgres(), _self_cpu()
        ok, bad, elapsed = post_load(port, key, bodies, seconds, connections)
        threads1, pg1, client1 = _threads(proc.pid), _postgres(), _self_cpu()
    logs = ok * 100
    per_log = {tid: (cpu - threads0.get(tid, 0.0)) / logs * 1e6 for tid, cpu in threads1.items()}
    loop = per_log.pop(proc.pid, 0.0)
    others = sorted((v for v in per_log.values() if v >= 0.05), reverse=True)
    db = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items()) / logs * 1e6
    client = (client1 - client0) / logs * 1e6
    total = loop + sum(others) + db + client
    cores = os.cpu_count() or 1
    print(f"[{kind}] {connections} clients: {logs / elapsed:,.0f} logs/s (non-2xx {bad}); CPU us per log: "
          f"event loop {loop:.2f}, other server threads {' + '.join(f'{v:.2f}' for v in others) or '0'}"
          f"{' (the writer: SQLite runs in it)' if kind == 'sqlite' else ''}, "
          f"PostgreSQL processes {db:.2f}, load generator {client:.2f}; total {total:.2f} us, "
          f"{total * logs / elapsed / 1e6 * 100:.0f}% of one core; ceiling at {cores} cores all busy: "
          f"{cores / total * 1e6:,.0f} logs/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    messages = sample_messages()
    for kind in ("sqlite", "postgresql"):
        if args.only in (None, kind):
            for connections in args.connections:
                measure(kind, connections, args.seconds, messages)


if __name__ == "__main__":
    main()

"""Paired ingest rounds: this checkout against another commit, alternating, on the same data.

    .venv/bin/python bench/ingest_ab.py REF [--only postgresql] [--pairs 8] [--seconds 8] [--connections 128]

The shared machine's speed drifts by 20-40% within minutes, so a change worth less than that
shows only in pairs: each pair runs REF (checked out in a temporary git worktree) and this
checkout one after the other, each with a fresh database and server (as deployed: `python -m
server run --no-dashboard`, one worker), 128 keep-alive clients (as bench/ingest_throughput.py)
posting batches of 100 loghub messages, 3 s unmeasured, then --seconds measured. Prints each pair and the median of the
pairs' ratios. Both servers run this virtual environment; REF's own migrations and code (its C
speed-ups compiled in its worktree).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, ingest_bodies, ingest_server, post_load, sample_messages


def one_round(kind: str, root: Path, bodies: list[bytes], seconds: float, connections: int) -> float:
    with ingest_server(kind, root) as (_, port, key):
        post_load(port, key, bodies, 3, connections)
        ok, _, elapsed = post_load(port, key, bodies, seconds, connections)
    return ok * 100 / elapsed


def build_speedups(root: Path) -> None:
    """REF's own C speed-ups (server/_c/*.c, or server/_speedups.c before they were split)
    compiled in its worktree, when it has them: else its `server` package would import this
    checkout's (the editable install's finder maps the name here)."""
    sources = sorted(str(p.relative_to(root)) for p in (root / "server" / "_c").glob("*.c"))
    if not sources and (root / "server" / "_speedups.c").exists():
        sources = ["server/_speedups.c"]
    if sources:
        subprocess.run([sys.executable, "-c", _BUILD, *sources], cwd=root, check=True, stdout=subprocess.DEVNULL)


_BUILD = """
import sys
from setuptools import Distribution, Extension
dist = Distribution({"ext_modules": [Extension("server._speedups", sys.argv[1:])]})
build = dist.get_command_obj("build_ext")
build.inplace = True
dist.run_command("build_ext")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ref", help="the commit to compare against (e.g. HEAD~1)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=128)
    args = parser.parse_args()
    rng = random.Random(1)
    messages = sample_messages()  # this checkout's loghub sample, for both
    bodies = ingest_bodies(messages, rng)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(other), args.ref], cwd=ROOT, check=True)
        try:
            build_speedups(other)
            ratios = []
            for pair in range(args.pairs):
                before = one_round(args.only, other, bodies, args.seconds, args.connections)
                after = one_round(args.only, ROOT, bodies, args.seconds, args.connections)
                ratios.append(after / before)
                print(f"[{args.only}] pair {pair + 1}: {args.ref} {before:,.0f}, this checkout {after:,.0f} logs/s "
                      f"({after / before:.2f}x)", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    print(f"[{args.only}] median ratio over {len(ratios)} pairs: {statistics.median(ratios):.2f}x "
          f"(this checkout faster in {sum(r > 1 for r in ratios)} of {len(ratios)})")


if __name__ == "__main__":
    main()

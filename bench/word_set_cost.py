"""The words of a word block, per log: server._speedups.WordSet against server.fulltext.PyWordSet.

    .venv/bin/python bench/word_set_cost.py [--bodies 200] [--repeat 7]

The messages of `--bodies` bodies of 100 loghub messages (as the ingest benchmark posts them),
each body's added to its app's pending set as `LogWriter.submit` adds them (`add_texts`), a new
set every 16 bodies (a commit's worth at ~100k logs/s), then the block's text made
(`text(BLOCK_WORD_MAX)`); the Python set (the baseline) and the C one alternating, best of
--repeat passes. Both must hold the same words (checked first).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._common import ingest_bodies, sample_messages
from server.fulltext import BLOCK_WORD_MAX, PyWordSet, WordSet, split_words
from server.native import built

PER_COMMIT = 16


def blocks(texts: list[list[str]], new: Callable[[], WordSet]) -> list[str]:
    out = []
    pending = new()
    for i, messages in enumerate(texts, 1):
        pending.add_texts(messages)
        if i % PER_COMMIT == 0:
            out.append(pending.text(BLOCK_WORD_MAX))
            pending = new()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bodies", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if not built:
        raise SystemExit("server._speedups is not built: reinstall with a C compiler (pip install -e .)")
    from server._speedups import WordSet as CWordSet

    bodies = ingest_bodies(sample_messages(), random.Random(1), args.bodies)
    texts = [[log["message"] for log in orjson.loads(body)["logs"]] for body in bodies]
    n = sum(map(len, texts))
    variants: dict[str, Callable[[], WordSet]] = {"Python set": PyWordSet, "C": lambda: CWordSet(split_words)}
    results = {label: blocks(texts, new) for label, new in variants.items()}
    assert [set(t.split()) for t in results["C"]] == [set(t.split()) for t in results["Python set"]]
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeat):
        for label, new in variants.items():
            started = time.perf_counter()
            blocks(texts, new)
            best[label] = min(best[label], (time.perf_counter() - started) / n * 1e6)
    words = sum(len(t.split()) for t in results["C"]) / len(results["C"])
    print(f"{n} logs, blocks of {PER_COMMIT * 100} logs ({words:,.0f} distinct words each), per log (best of {args.repeat}): "
          f"PyWordSet (baseline) {best['Python set']:.3f} us, C WordSet {best['C']:.3f} us "
          f"({best['Python set'] / best['C']:.1f}x less)")


if __name__ == "__main__":
    main()

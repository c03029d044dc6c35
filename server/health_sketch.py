"""Latency histogram bins: sparse, log-scale, mergeable by adding counts.

Bin k holds durations d (milliseconds) with 2^(k/8) <= d < 2^((k+1)/8): eight bins per
doubling, each 9.05% wider than the previous. A percentile is read as the bin that holds
the nearest-rank sample and reported as that bin's value 2·lo·hi/(lo+hi), which is within
RELATIVE_ACCURACY (4.33%) of every value in the bin, so of the exact percentile too.
Durations below MIN_MS (including 0) count in MIN_MS's bin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

__all__ = [
    "BINS_PER_DOUBLING", "MIN_MS", "RELATIVE_ACCURACY", "add_encoded", "appended", "bin_of", "bin_value", "decode",
    "encode", "percentiles",
]

BINS_PER_DOUBLING = 8
MIN_MS = 0.001
_GAMMA: float = 2.0 ** (1.0 / BINS_PER_DOUBLING)
RELATIVE_ACCURACY = (_GAMMA - 1.0) / (_GAMMA + 1.0)
_MIN_BIN = math.floor(math.log2(MIN_MS) * BINS_PER_DOUBLING)


def bin_of(duration_ms: float) -> int:
    """The bin of a duration in milliseconds (finite, >= 0)."""
    if duration_ms <= MIN_MS:
        return _MIN_BIN
    return math.floor(math.log2(duration_ms) * BINS_PER_DOUBLING)


def bin_value(index: int) -> float:
    """The value reported for a bin: within RELATIVE_ACCURACY of both of its edges."""
    lo = float(2.0 ** (index / BINS_PER_DOUBLING))
    hi = lo * _GAMMA
    return 2.0 * lo * hi / (lo + hi)


def percentiles(bins: Iterable[tuple[int, int]], quantiles: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles (rank ceil(q·n)) of a histogram given as (bin, count) pairs; one pass."""
    ordered = sorted(bins)
    total = sum(count for _, count in ordered)
    qs = list(quantiles)
    if total == 0:
        return [None] * len(qs)
    wanted = sorted((max(1, math.ceil(q * total - 1e-9)), i) for i, q in enumerate(qs))
    out: list[float | None] = [None] * len(qs)
    seen, w = 0, 0
    for index, count in ordered:
        seen += count
        while w < len(wanted) and wanted[w][0] <= seen:
            out[wanted[w][1]] = float(f"{bin_value(index):.4g}")
            w += 1
        if w == len(wanted):
            break
    return out


def encode(bins: dict[int, int]) -> str:
    """A histogram as stored: JSON [first bin, its count, the next bin's count, ...].

    A stored value may be several such arrays back to back ("[...][...]"): the writer appends
    each commit's additions and rewrites the merged histogram now and then (server.health_store).
    """
    first, last = min(bins), max(bins)
    return orjson.dumps([first, *(bins.get(i, 0) for i in range(first, last + 1))]).decode()


def appended(text: str | bytes) -> int:
    """How many additions were appended to a stored histogram since it was last rewritten."""
    return text.count("][") if isinstance(text, str) else text.count(b"][")


def decode(text: str | bytes) -> dict[int, int]:
    out: dict[int, int] = {}
    add_encoded(out, text)
    return out


def add_encoded(into: dict[int, int], text: str | bytes) -> None:
    """Add a stored histogram (one array or several back to back) into `into`, in place."""
    if isinstance(text, bytes):
        text = text.decode()
    arrays = orjson.loads(f"[{text.replace('][', '],[')}]") if "][" in text else [orjson.loads(text)]
    get = into.get
    for dense in arrays:
        index = dense[0]
        for n in dense[1:]:
            if n:
                into[index] = get(index, 0) + n
            index += 1

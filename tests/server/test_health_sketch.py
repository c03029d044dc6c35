"""Percentile accuracy of the latency bins against exact percentiles of generated data."""

from __future__ import annotations

import math
import random

import pytest

from server.health_sketch import MIN_MS, RELATIVE_ACCURACY, bin_of, bin_value, percentiles

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def histogram(values: list[float]) -> dict[int, int]:
    bins: dict[int, int] = {}
    for v in values:
        bins[bin_of(v)] = bins.get(bin_of(v), 0) + 1
    return bins


def _data(kind: str, rng: random.Random, n: int) -> list[float]:
    if kind == "lognormal":
        return [round(rng.lognormvariate(math.log(40), 0.8), 3) for _ in range(n)]
    if kind == "uniform":
        return [round(rng.uniform(0.5, 3000), 3) for _ in range(n)]
    if kind == "bimodal":  # cache hits and misses
        return [round(rng.gauss(2, 0.3) if rng.random() < 0.7 else rng.gauss(800, 150), 3) for _ in range(n)]
    return [round(rng.paretovariate(1.2) * 5, 3) for _ in range(n)]  # heavy tail


@pytest.mark.parametrize("kind", ["lognormal", "uniform", "bimodal", "pareto"])
def test_percentiles_are_within_the_stated_relative_accuracy(kind: str) -> None:
    rng = random.Random(kind)
    values = [max(v, MIN_MS) for v in _data(kind, rng, 20_000)]
    estimates = percentiles(histogram(values).items(), QUANTILES)
    for q, estimate in zip(QUANTILES, estimates, strict=True):
        truth = exact(values, q)
        assert estimate is not None
        # 4 significant digits of rounding on top of the bins' bound
        assert abs(estimate - truth) <= truth * (RELATIVE_ACCURACY + 5e-4), (kind, q, estimate, truth)


def test_histograms_merge_by_adding_counts() -> None:
    rng = random.Random(7)
    parts = [_data("lognormal", rng, 1000) for _ in range(5)]
    merged: dict[int, int] = {}
    for part in parts:
        for index, count in histogram(part).items():
            merged[index] = merged.get(index, 0) + count
    everything = [v for part in parts for v in part]
    assert merged == histogram(everything)
    assert percentiles(merged.items(), QUANTILES) == percentiles(histogram(everything).items(), QUANTILES)


def test_bins_and_edge_cases() -> None:
    assert RELATIVE_ACCURACY == pytest.approx(0.0433, abs=1e-4)
    for index in range(-80, 200):
        lo, hi = 2 ** (index / 8), 2 ** ((index + 1) / 8)
        value = bin_value(index)
        assert lo < value < hi
        assert (value - lo) / lo <= RELATIVE_ACCURACY + 1e-12 and (hi - value) / hi <= RELATIVE_ACCURACY + 1e-12
    assert bin_of(0) == bin_of(MIN_MS)
    assert bin_of(1.0) == 0 and bin_of(2.0) == 8 and bin_of(1.99) == 7
    assert percentiles([], [0.5]) == [None]
    assert percentiles([(0, 1)], [0.5, 0.99]) == [pytest.approx(bin_value(0), rel=1e-3)] * 2

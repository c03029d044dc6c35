"""Roll-ups are mergeable: requests roll up their own rows and the writer adds them up.

The writer's commit must store exactly what rolling up all the commit's rows at once gives,
whichever way the rows were split between requests.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from server.health_rollup import MinuteDelta, merge_minutes, rollup, rollup_minutes, spread

_LEVELS = ((10, "DEBUG"), (20, "INFO"), (30, "WARNING"), (40, "ERROR"), (50, "CRITICAL"))


def _rows(n: int, rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    base = 1_767_225_600_000_000 - 90 * 60_000_000  # 90 minutes before a UTC day boundary
    for i in range(n):
        level, name = rng.choice(_LEVELS)
        ts = base + rng.randrange(3 * 3600 * 1_000_000)
        attributes = None
        if rng.random() < 0.4:
            attributes = orjson.dumps({"method": rng.choice(["GET", "POST"]), "route": rng.choice(["/a/{id}", "/b"]),
                                       "duration_ms": round(rng.uniform(0.1, 900), 3)}).decode()
        message = f"job {rng.randrange(5)} failed with code {rng.randrange(1000)}"
        rows.append((None, rng.choice([1, 2]), ts, ts + rng.randrange(-5, 5) * 1_000_000, level, name,
                     rng.choice(["api", "worker", ""]), "log", message, attributes, None, "", "", "", None, "", "", str(i)))
    return rows


@pytest.mark.parametrize("parts", [1, 2, 7, 40])
def test_merged_request_rollups_equal_one_rollup(parts: int) -> None:
    rng = random.Random(parts)
    rows = _rows(2000, rng)
    cuts = sorted(rng.sample(range(1, len(rows)), parts - 1))
    total = MinuteDelta()
    for start, end in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        merge_minutes(total, rollup_minutes(rows[start:end]))
    merged, whole = spread(total), rollup(rows)
    assert merged.counts == whole.counts
    assert merged.errors == whole.errors
    assert merged.latency == whole.latency
    assert merged.services == whole.services
    assert merged.routes == whole.routes
    assert sum(whole.counts[k] for k in whole.counts if k[1] == 60) == len(rows)


def test_merge_keeps_the_first_message_and_the_latest_time() -> None:
    first = (None, 1, 1_767_225_600_000_000, 1_767_225_600_000_000, 40, "ERROR", "api", "log",
             "job 1 failed with code 23", None, None, "", "", "", None, "", "", "")
    later = (*first[:2], first[2] + 5_000_000, first[3], *first[4:8], "job 1 failed with code 99", *first[9:])
    into = rollup_minutes([first])
    merge_minutes(into, rollup_minutes([later]))
    assert list(into.errors.values()) == [[2, first[2] + 5_000_000, "job 1 failed with code 23"]]
    assert list(into.counts.values()) == [2]
    assert into.services == {(1, "api"): first[2]}


def test_request_durations_count_only_finite_non_negative_numbers() -> None:
    """duration_ms: ints and floats >= 0 count (0 and tiny ones in the lowest bin); bools,
    strings, negatives and nulls do not; the route key comes from route, method, path."""
    from server.health_sketch import bin_of

    values: list[Any] = [12, 0, 0.0004, 3.5, 10**15, True, False, "12", -1, -0.5, None, [], {"ms": 3}]
    base = (None, 1, 1_767_225_600_000_000, 1_767_225_600_000_000, 20, "INFO", "api", "log", "GET /x")
    rows = [(*base, orjson.dumps({"method": "GET", "route": "/x", "duration_ms": v}).decode(), *("",) * 8) for v in values]
    rows.append((*base, orjson.dumps({"path": "/users/42/cart", "duration_ms": 7}).decode(), *("",) * 8))
    delta = rollup_minutes(rows)
    counted = [12, 0, 0.0004, 3.5, 10**15]
    minute = base[2] // 60_000_000
    n, total, bins = delta.latency[(1, minute, "api", "GET /x")]
    assert n == len(counted) and total == sum(round(v * 1000) for v in counted)
    expected: dict[int, int] = {}
    for v in counted:
        expected[bin_of(v)] = expected.get(bin_of(v), 0) + 1
    assert bins == expected
    assert delta.latency[(1, minute, "api", "/users/{id}/cart")][:2] == [1, 7000]
    assert set(delta.routes) == {(1, "api", "GET /x"), (1, "api", "/users/{id}/cart")}

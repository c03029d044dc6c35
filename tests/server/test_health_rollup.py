"""What ingest stores for request records, and how query results become upsert rows."""

from __future__ import annotations

from typing import Any

import pytest

from server.health_rollup import ALL_ROUTES, fingerprint, minutes, request_fields, spread
from server.health_sketch import bin_of

DAY = 1_767_225_600  # a UTC midnight (epoch seconds)


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"method": "GET", "route": "/x", "duration_ms": 12}, ("GET /x", 12_000, bin_of(12))),
    ({"method": "GET", "route": "/x", "duration_ms": 3.5}, ("GET /x", 3_500, bin_of(3.5))),
    ({"method": "GET", "route": "/x", "duration_ms": 0}, ("GET /x", 0, bin_of(0))),
    ({"method": "GET", "route": "/x", "duration_ms": 0.0004}, ("GET /x", 0, bin_of(0.001))),
    ({"path": "/users/42/cart", "duration_ms": 7}, ("/users/{id}/cart", 7_000, bin_of(7))),
    ({"method": "POST", "duration_ms": 1}, ("POST ?", 1_000, bin_of(1))),
    ({"route": "*", "duration_ms": 1}, ("(*)", 1_000, bin_of(1))),  # "*" is the whole service's key
])
def test_request_fields(attributes: dict[str, Any], expected: tuple[str, int, int]) -> None:
    assert request_fields(attributes) == expected


@pytest.mark.parametrize("value", [True, False, "12", -1, -0.5, None, [], {"ms": 3}, float("nan"), float("inf"), 10**13])
def test_only_finite_non_negative_numbers_are_durations(value: Any) -> None:
    assert request_fields({"method": "GET", "route": "/x", "duration_ms": value}) is None


def test_minutes_spread_into_hours_days_and_the_whole_service() -> None:
    minute = DAY // 60 - 1  # the last minute of the previous day
    counts = [(1, "api", "ERROR", minute, 3, DAY * 1_000_000 - 5), (1, "api", "INFO", minute + 1, 2, DAY * 1_000_000 + 9)]
    latency = [(1, "api", minute, "GET /x", 10, 2, 2_500, DAY * 1_000_000 - 7),
               (1, "api", minute, "GET /x", 11, 1, 3_000, DAY * 1_000_000 - 6),
               (1, "api", minute + 1, "POST /y", 10, 4, 4_000, DAY * 1_000_000 + 8)]
    errors = [(1, "api", DAY * 1_000_000 - 9, "card 41 declined"), (1, "api", DAY * 1_000_000 - 5, "card 7 declined")]
    delta = spread(minutes(counts, latency, errors))
    assert delta.counts == {
        (1, 60, "api", DAY - 60, 40): 3, (1, 3600, "api", DAY - 3600, 40): 3, (1, 86400, "api", DAY - 86400, 40): 3,
        (1, 60, "api", DAY, 20): 2, (1, 3600, "api", DAY, 20): 2, (1, 86400, "api", DAY, 20): 2,
    }
    assert delta.services == {(1, "api"): DAY * 1_000_000 + 9}
    assert delta.routes == {(1, "api", "GET /x"): DAY * 1_000_000 - 6, (1, "api", "POST /y"): DAY * 1_000_000 + 8}
    assert delta.latency[(1, 3600, "api", "GET /x", DAY - 3600)] == [3, 5_500, {10: 2, 11: 1}]
    assert delta.latency[(1, 86400, "api", ALL_ROUTES, DAY - 86400)] == [3, 5_500, {10: 2, 11: 1}]
    assert delta.latency[(1, 86400, "api", ALL_ROUTES, DAY)] == [4, 4_000, {10: 4}]
    print_ = fingerprint("card 41 declined")
    assert delta.errors[(1, 60, "api", DAY - 60, print_)] == [2, DAY * 1_000_000 - 5, "card 41 declined"]

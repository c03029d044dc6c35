"""Health aggregates: the rows the aggregate tables get, and what ingest stores for them.

At ingest, a request record (attributes carrying a valid `duration_ms`) has its route key, its
duration in microseconds and its histogram bin kept apart (`request_fields`), so that the
aggregator (`server.health_aggregate`) counts new logs with plain SQL `GROUP BY`s
and no JSON. `minutes` turns those queries' results into per-minute aggregates, and `spread`
adds each minute into its hour and day (UTC) and each route into the service's "*" route:
one upsert row per distinct key (`server.health_store` writes them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from server.health_sketch import bin_of

__all__ = [
    "ALL_ROUTES", "LEVEL_NUMBERS", "RESOLUTIONS", "HealthDelta", "MinuteDelta", "fingerprint", "minutes",
    "request_fields", "request_route", "spread",
]

RESOLUTIONS = (60, 3600, 86400)
ALL_ROUTES = "*"
LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
ROUTE_MAX = 200
FINGERPRINT_MAX = 200
MESSAGE_MAX = 500
_MINUTE_US = 60_000_000
_MAX_MS = 10**12  # 31 years: a larger duration is not a request's (and would not fit the column in microseconds)
# Numbers, hex ids and UUIDs vary between otherwise identical messages.
_VARIABLE = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*\d[0-9a-fA-F]*\b|\d+"
)
_PATH_ID = re.compile(r"(?<=/)(?:[0-9a-fA-F-]*\d[0-9a-fA-F-]*|\d[^/]*)(?=/|$)")


@dataclass
class HealthDelta:
    """Upsert rows by table; each key appears once."""

    counts: dict[tuple[int, int, str, int, int], int] = field(default_factory=dict)
    # (app, res, service, route, start_s) -> [requests, total_us, {bin: requests}]
    latency: dict[tuple[int, int, str, str, int], list[Any]] = field(default_factory=dict)
    errors: dict[tuple[int, int, str, int, str], list[Any]] = field(default_factory=dict)  # [records, last_ts, message]
    services: dict[tuple[int, str], int] = field(default_factory=dict)
    routes: dict[tuple[int, str, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.services)


@functools.lru_cache(maxsize=4096)
def fingerprint(message: str) -> str:
    """The message with its variable parts (numbers, hex ids, UUIDs) replaced by #."""
    return _VARIABLE.sub("#", message[: FINGERPRINT_MAX * 2])[:FINGERPRINT_MAX]


def request_route(attributes: dict[str, Any]) -> str:
    """`METHOD route`: the framework's route template, else the path with id-like segments as {id}."""
    return _route_key(attributes.get("route"), attributes.get("method"), attributes.get("path"))


@functools.lru_cache(maxsize=4096)
def _route_key(route: Any, method: Any, path: Any) -> str:
    if not isinstance(route, str) or not route:
        route = _PATH_ID.sub("{id}", path) if isinstance(path, str) and path else "?"
    key = f"{method} {route}" if isinstance(method, str) and method else route
    return key[:ROUTE_MAX] if key != ALL_ROUTES else "(*)"


def request_fields(attributes: dict[str, Any]) -> tuple[str, int, int] | None:
    """A request record's (route key, duration in microseconds, histogram bin), or None when
    `duration_ms` is not a finite number >= 0 (a bool, a string, negative ...)."""
    duration: Any = attributes.get("duration_ms")
    kind = duration.__class__
    if kind is not float and kind is not int or not 0 <= duration <= _MAX_MS:  # NaN fails too
        return None
    return request_route(attributes), round(duration * 1000), bin_of(duration)


def _spread(minute_start: int) -> tuple[tuple[int, int], ...]:
    return tuple((res, minute_start - minute_start % res) for res in RESOLUTIONS)


@dataclass
class MinuteDelta:
    """Aggregates per minute, before routes are summed into "*" and minutes into hours and
    days (`spread`)."""

    counts: dict[tuple[int, int, str, str], int] = field(default_factory=dict)  # (app, minute, service, level name)
    errors: dict[tuple[int, int, str, str], list[Any]] = field(default_factory=dict)  # ... fingerprint: [n, last_ts, msg]
    latency: dict[tuple[int, int, str, str], list[Any]] = field(default_factory=dict)  # ... route: [n, total_us, bins]
    services: dict[tuple[int, str], int] = field(default_factory=dict)
    routes: dict[tuple[int, str, str], int] = field(default_factory=dict)


def minutes(
    counts: Iterable[tuple[Any, ...]], latency: Iterable[tuple[Any, ...]], errors: Iterable[tuple[Any, ...]]
) -> MinuteDelta:
    """Per-minute aggregates from the aggregator's three queries (server.health_aggregate):
    counts (app, service, level name, minute, records, newest min(ts, received_at)), latency
    (app, service, minute, route, bin, requests, total us, newest ...) and the error records
    (app, service, ts, message) in id order."""
    delta = MinuteDelta()
    seen = delta.services
    for app_id, service, level_name, minute, n, at in counts:
        delta.counts[(app_id, minute, service, level_name)] = n
        if at > seen.get((app_id, service), -1):
            seen[(app_id, service)] = at
    per_minute, routes = delta.latency, delta.routes
    for app_id, service, minute, route, index, n, total_us, at in latency:
        key = (app_id, minute, service, route)
        found = per_minute.get(key)
        if found is None:
            found = per_minute[key] = [0, 0, {}]
        found[0] += n
        found[1] += total_us
        found[2][index] = n
        if at > routes.get((app_id, service, route), -1):
            routes[(app_id, service, route)] = at
    per_print = delta.errors
    for app_id, service, ts, message in errors:
        ekey = (app_id, ts // _MINUTE_US, service, fingerprint(message))
        found = per_print.get(ekey)
        if found is None:
            per_print[ekey] = [1, ts, message[:MESSAGE_MAX]]
        else:
            found[0] += 1
            found[1] = max(found[1], ts)
    return delta


def spread(minutes: MinuteDelta) -> HealthDelta:
    """The upsert rows: each minute also counted in its hour and day, each route also in "*"."""
    delta = HealthDelta(services=dict(minutes.services), routes=dict(minutes.routes))
    counts = delta.counts
    for (app_id, minute, service, level_name), n in minutes.counts.items():
        level = LEVEL_NUMBERS[level_name]
        for res, start in _spread(minute * 60):
            ckey = (app_id, res, service, start, level)
            counts[ckey] = counts.get(ckey, 0) + n
    for (app_id, minute, service, print_), (n, last_ts, message) in minutes.errors.items():
        for res, start in _spread(minute * 60):
            _add_error(delta.errors, (app_id, res, service, start, print_), n, last_ts, message)
    all_routes: dict[tuple[int, int, str, str], list[Any]] = {}
    for (app_id, minute, service, _), (n, total, bins) in minutes.latency.items():
        _add_latency(all_routes, (app_id, minute, service, ALL_ROUTES), n, total, bins)
    for (app_id, minute, service, route), (n, total, bins) in (*minutes.latency.items(), *all_routes.items()):
        for res, start in _spread(minute * 60):
            _add_latency(delta.latency, (app_id, res, service, route, start), n, total, bins)
    return delta


def _add_error(table: dict[Any, list[Any]], key: Any, n: int, last_ts: int, message: str) -> None:
    found = table.get(key)
    if found is None:
        table[key] = [n, last_ts, message]
    else:
        found[0] += n
        found[1] = max(found[1], last_ts)


def _add_latency(table: dict[Any, list[Any]], key: Any, n: int, total: int, bins: dict[int, int]) -> None:
    found = table.get(key)
    if found is None:
        table[key] = [n, total, dict(bins)]
    else:
        found[0] += n
        found[1] += total
        hist = found[2]
        for index, count in bins.items():
            hist[index] = hist.get(index, 0) + count

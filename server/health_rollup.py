"""Health aggregates of one commit's rows, computed in Python: one upsert row per distinct key.

`rollup(rows)` counts the committed rows per (app, minute, service, level), request
durations per (app, minute, service, route) with their histogram bins, and error messages
per fingerprint, then adds each minute into its hour and day (UTC). Requests roll up their own
rows per minute (`rollup_minutes`); writers add those up and write them now and then, inside a
commit (`server.health_pending`, `server.health_store`), so the aggregates match the stored rows.
"""

from __future__ import annotations

import functools
import math
import re
from math import floor
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.health_sketch import BINS_PER_DOUBLING, MIN_MS, bin_of

__all__ = [
    "ALL_ROUTES", "LEVEL_NUMBERS", "RESOLUTIONS", "HealthDelta", "MinuteDelta", "fingerprint", "merge_minutes",
    "request_route", "rollup", "rollup_minutes", "spread",
]

RESOLUTIONS = (60, 3600, 86400)
ALL_ROUTES = "*"
LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
ROUTE_MAX = 200
FINGERPRINT_MAX = 200
MESSAGE_MAX = 500
_MINUTE_US = 60_000_000
_MIN_BIN = bin_of(MIN_MS)
_MAX_MS = 10**300  # larger integers would not convert to a float
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


def _spread(minute_start: int) -> tuple[tuple[int, int], ...]:
    return tuple((res, minute_start - minute_start % res) for res in RESOLUTIONS)


@dataclass
class MinuteDelta:
    """One batch's aggregates per minute, before routes are summed into "*" and minutes into
    hours and days (`spread`). Requests roll up their own rows into one of these, off the
    writer's serial path; the writer merges a commit's worth and spreads the sum once."""

    counts: dict[tuple[int, int, str, str], int] = field(default_factory=dict)  # (app, minute, service, level name)
    errors: dict[tuple[int, int, str, str], list[Any]] = field(default_factory=dict)  # ... fingerprint: [n, last_ts, msg]
    latency: dict[tuple[int, int, str, str], list[Any]] = field(default_factory=dict)  # ... route: [n, total_us, bins]
    services: dict[tuple[int, str], int] = field(default_factory=dict)
    routes: dict[tuple[int, str, str], int] = field(default_factory=dict)


def rollup(rows: list[tuple[Any, ...]]) -> HealthDelta:
    """Aggregate committed rows (in `server.ingest_validate.COLUMNS` order)."""
    return spread(rollup_minutes(rows))


def rollup_minutes(rows: list[tuple[Any, ...]]) -> MinuteDelta:
    """Per-minute aggregates of rows (in `server.ingest_validate.COLUMNS` order)."""
    delta = MinuteDelta()
    minutes, seen = delta.counts, delta.services
    errors: list[tuple[Any, ...]] = []
    timed: list[tuple[Any, ...]] = []
    get_minute, get_seen = minutes.get, seen.get
    for row in rows:  # the hot loop: plain tuple and dict operations only
        app_id, ts, received, service = row[1], row[2], row[3], row[6]
        key = (app_id, ts // _MINUTE_US, service, row[5])
        minutes[key] = get_minute(key, 0) + 1
        at = ts if ts < received else received  # noqa: FURB136 - min() costs a call per row
        skey = (app_id, service)
        if at > get_seen(skey, -1):
            seen[skey] = at
        if row[4] >= 40:
            errors.append(row)
        attributes = row[9]
        if attributes is not None and '"duration_ms"' in attributes:
            timed.append(row)
    _errors(delta, errors)
    _latency(delta, timed)
    return delta


def merge_minutes(into: MinuteDelta, other: MinuteDelta) -> None:
    """Add `other` (of rows after `into`'s) into `into`, as if both were rolled up together."""
    counts = into.counts
    for ckey, n in other.counts.items():
        counts[ckey] = counts.get(ckey, 0) + n
    for ekey, (n, last_ts, message) in other.errors.items():
        _add_error(into.errors, ekey, n, last_ts, message)
    for lkey, (n, total, bins) in other.latency.items():
        _add_latency(into.latency, lkey, n, total, bins)
    for skey, at in other.services.items():
        if at > into.services.get(skey, -1):
            into.services[skey] = at
    for rkey, at in other.routes.items():
        if at > into.routes.get(rkey, -1):
            into.routes[rkey] = at


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


def _errors(delta: MinuteDelta, rows: list[tuple[Any, ...]]) -> None:
    per_minute = delta.errors
    for row in rows:
        key = (row[1], row[2] // _MINUTE_US, row[6], fingerprint(row[8]))
        found = per_minute.get(key)
        if found is None:
            per_minute[key] = [1, row[2], row[8][:MESSAGE_MAX]]
        else:
            found[0] += 1
            found[1] = max(found[1], row[2])


def _latency(delta: MinuteDelta, rows: list[tuple[Any, ...]]) -> None:
    """Request durations: rows whose attributes mention duration_ms (one loop, no calls but
    the cached route key: this runs for every request record)."""
    per_minute, routes = delta.latency, delta.routes
    get_minute, get_route, loads, route_key, log2 = per_minute.get, routes.get, orjson.loads, _route_key, math.log2
    for row in rows:
        attributes = loads(row[9])
        if attributes.__class__ is not dict:
            continue
        get = attributes.get
        duration: Any = get("duration_ms")
        kind = duration.__class__
        if kind is int:
            if duration < 0 or duration > _MAX_MS:
                continue
        elif kind is not float or not 0 <= duration < math.inf:
            continue  # a bool, a string, a negative number ...
        app_id, ts, received, service = row[1], row[2], row[3], row[6]
        route = route_key(get("route"), get("method"), get("path"))
        at = ts if ts < received else received  # noqa: FURB136
        rkey = (app_id, service, route)
        if at > get_route(rkey, -1):
            routes[rkey] = at
        key = (app_id, ts // _MINUTE_US, service, route)
        found = get_minute(key)
        if found is None:
            per_minute[key] = found = [0, 0, {}]
        found[0] += 1
        found[1] += round(duration * 1000)
        index = floor(log2(duration) * BINS_PER_DOUBLING) if duration > MIN_MS else _MIN_BIN  # = bin_of
        bins = found[2]
        bins[index] = bins.get(index, 0) + 1

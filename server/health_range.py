"""The time range and buckets of a health query: parsing, local-time alignment, resolution.

Buckets shorter than a day start at each local midnight of `tz` (then every `bucket`
seconds of elapsed time); buckets of whole days start at local midnights. The stored
resolution used is the coarsest (day, hour, minute, all UTC) whose buckets fit exactly
inside the requested ones, so sums are exact in every time zone.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.errors import ApiError
from server.logs_query import parse_time
from server.settings import Settings

__all__ = ["MAX_BUCKETS", "HealthRange", "iso", "parse_range"]

MAX_BUCKETS = 1500
_DAY = 86400
_BUCKET = re.compile(r"^(\d+)(m|h|d)?$")
_UNITS = {None: 1, "m": 60, "h": 3600, "d": _DAY}
# Automatic bucket: the first of these that gives at most ~120 buckets.
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_LADDER = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, _DAY, 7 * _DAY)


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=field)


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class HealthRange:
    since_s: int
    until_s: int
    bucket_s: int
    tz: str
    bounds: list[int]  # bucket starts, then the end of the last bucket (epoch seconds)
    res: int
    uniform: bool  # every bucket is bucket_s long (no daylight-saving change inside the range)

    @property
    def one_row_per_bucket(self) -> bool:
        """Each stored row is a whole bucket: SQL need not sum (nor sort to group)."""
        return self.uniform and self.res == self.bucket_s

    def bucket_sql(self) -> tuple[str, list[int]]:
        """SQL for the bucket index of a row's start_s, with its arguments."""
        if self.uniform:
            return "(start_s - ?) / ?", [self.bounds[0], self.bucket_s]
        return "start_s", []

    def index(self, value: int) -> int:
        """The bucket index of a value `bucket_sql` returned."""
        return value if self.uniform else bisect_right(self.bounds, value) - 1

    def starts(self) -> list[dict[str, Any]]:
        return [{"start": iso(s), "start_s": s} for s in self.bounds[:-1]]


def _bucket(raw: str | None, span: int) -> int:
    if not raw:
        return next((b for b in _LADDER if span / b <= 120), _LADDER[-1])
    match = _BUCKET.match(raw.strip())
    if not match:
        raise _bad("bucket", f"bucket must be seconds or a duration like 1m, 5m, 1h, 1d; got {raw[:20]!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 60 or seconds % 60 or not (_DAY % seconds == 0 or seconds % _DAY == 0):
        raise _bad("bucket", "bucket must be whole minutes dividing a day (1m, 5m, 15m, 1h, 6h ...) or whole days")
    return seconds


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, dtime(0), tzinfo=zone).timestamp())


def _boundaries(since: int, bucket: int, zone: ZoneInfo) -> Iterator[int]:
    """Every bucket boundary from a little before `since` on, ascending."""
    day = datetime.fromtimestamp(since, tz=zone).date() - timedelta(days=1 + bucket // _DAY)
    while True:
        start, end = _midnight(day, zone), _midnight(day + timedelta(days=1), zone)
        if bucket >= _DAY:
            if (day.toordinal() - _EPOCH_DAY) % (bucket // _DAY) == 0:
                yield start
        else:
            yield from range(start, end, bucket)
        day += timedelta(days=1)


def _bounds(since: int, until: int, bucket: int, zone: ZoneInfo) -> list[int]:
    out: list[int] = []
    for b in _boundaries(since, bucket, zone):
        if b <= since:
            out = [b]
            continue
        out.append(b)
        if b >= until:
            break
        if len(out) > MAX_BUCKETS + 1:
            raise _bad("bucket", f"the range holds more than {MAX_BUCKETS} buckets; use a larger bucket")
    return out


def parse_range(params: Any, settings: Settings, now_us: int | None = None) -> HealthRange:
    """since/until (ISO 8601, epoch seconds or 15m/24h/7d back from now), bucket, tz (IANA name)."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    since = parse_time(params.get("since") or "1h", "since", now_us) // 1_000_000
    until = -(-parse_time(params["until"], "until", now_us) // 1_000_000) if params.get("until") else -(-now_us // 1_000_000)
    if since >= until:
        raise _bad("since", "since must be before until")
    if until - since > 400 * _DAY:
        raise _bad("since", "the range must be at most 400 days")
    tz_name = params.get("tz") or "UTC"
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("tz", f"tz must be an IANA time zone name such as UTC or Europe/Paris; got {tz_name[:40]!r}") from None
    bucket = _bucket(params.get("bucket"), until - since)
    bounds = _bounds(since, until, bucket, zone)
    res = next(r for r in (_DAY, 3600, 60) if all(b % r == 0 for b in bounds))
    now_s = now_us // 1_000_000
    for r, days, name in ((60, settings.health_minute_retention_days, "MINUTE"),
                          (3600, settings.health_hour_retention_days, "HOUR")):
        if res == r and bounds[0] < now_s - days * _DAY:
            raise _bad("bucket", f"this range reaches back further than the {'per-minute' if r == 60 else 'per-hour'} "
                                 f"data is kept (HEALTH_{name}_RETENTION_DAYS = {days}); use a bucket of whole "
                                 f"{'hours' if r == 60 else 'days'}")
    uniform = all(b - a == bucket for a, b in pairwise(bounds))
    return HealthRange(since, until, bucket, tz_name, bounds, res, uniform)

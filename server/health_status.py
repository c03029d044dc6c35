"""The health summary of an app and its services, and the rule that gives each a status.

Rule (docs/health.md), over the window of the last HEALTH_WINDOW_MINUTES whole minutes:
  silent   - nothing received from the service for HEALTH_SILENT_MINUTES;
  failing  - error rate >= HEALTH_FAILING_ERROR_RATE, or request p95 >= HEALTH_FAILING_P95_MS;
  degraded - error rate >= HEALTH_DEGRADED_ERROR_RATE, or p95 >= HEALTH_DEGRADED_P95_MS, or
             any error while the window holds fewer than HEALTH_MIN_RECORDS records;
  healthy  - otherwise.
Rates need HEALTH_MIN_RECORDS records (latency: that many requests). The app's status is
its worst service's (failing > degraded > silent > healthy); no services at all is silent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from server.health_range import iso
from server.health_rollup import ALL_ROUTES
from server.health_series import list_services
from server.health_sketch import add_encoded, percentiles
from server.health_store import HealthReader
from server.logs_query import format_ts
from server.settings import Settings

__all__ = ["SEVERITY", "Thresholds", "app_status", "service_status", "summary"]

SEVERITY = {"healthy": 0, "silent": 1, "degraded": 2, "failing": 3}
TREND_STEP = 0.01  # error rates closer than one percentage point count as flat
TOP_ERRORS_APP = 10
TOP_ERRORS_SERVICE = 3


@dataclass
class _Figures:
    records: int = 0
    errors: int = 0
    prev_records: int = 0
    prev_errors: int = 0
    requests: int = 0
    bins: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    silent_us: int
    degraded_error_rate: float
    failing_error_rate: float
    degraded_p95_ms: float
    failing_p95_ms: float
    min_records: int

    @classmethod
    def from_settings(cls, s: Settings) -> Thresholds:
        return cls(s.health_silent_minutes * 60_000_000, s.health_degraded_error_rate, s.health_failing_error_rate,
                   s.health_degraded_p95_ms, s.health_failing_p95_ms, s.health_min_records)


def service_status(
    t: Thresholds, *, now_us: int, last_seen_us: int, records: int, errors: int, requests: int, p95_ms: float | None
) -> tuple[str, list[str]]:
    """(status, reasons) by the rule above."""
    if last_seen_us <= now_us - t.silent_us:
        return "silent", [f"nothing received for {t.silent_us // 60_000_000} minutes"]
    failing: list[str] = []
    degraded: list[str] = []
    if records >= t.min_records:
        rate = errors / records
        if rate >= t.failing_error_rate:
            failing.append(f"error rate {rate:.1%} >= {t.failing_error_rate:.1%}")
        elif rate >= t.degraded_error_rate:
            degraded.append(f"error rate {rate:.1%} >= {t.degraded_error_rate:.1%}")
    elif errors:
        degraded.append(f"{errors} error(s) in {records} records")
    if requests >= t.min_records and p95_ms is not None:
        if p95_ms >= t.failing_p95_ms:
            failing.append(f"p95 {p95_ms:g} ms >= {t.failing_p95_ms:g} ms")
        elif p95_ms >= t.degraded_p95_ms:
            degraded.append(f"p95 {p95_ms:g} ms >= {t.degraded_p95_ms:g} ms")
    if failing:
        return "failing", failing
    if degraded:
        return "degraded", degraded
    return "healthy", []


def _in(values: list[Any]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


def _trend(now: float | None, before: float | None) -> str:
    if now is None or before is None or abs(now - before) < TREND_STEP:
        return "flat"
    return "up" if now > before else "down"


async def summary(
    reader: HealthReader, settings: Settings, app_id: int, window_minutes: int, now_us: int | None = None
) -> dict[str, Any]:
    """Status, volume, error rate now vs the previous window, p95, last seen and top errors per service."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    end = (now_us // 60_000_000 + 1) * 60
    start, prev = end - window_minutes * 60, end - 2 * window_minutes * 60
    known = await list_services(reader, app_id)
    names = [s for s, _ in known]
    figures = {s: _Figures() for s in names}
    top: list[tuple[str, str, int, int, str]] = []
    if names:
        where = f"app_id = ? AND res = 60 AND service IN {_in(names)} AND start_s >= ? AND start_s < ?"
        for service, current, is_error, n in await reader.fetch(
            "SELECT service, CASE WHEN start_s >= ? THEN 1 ELSE 0 END AS c, CASE WHEN level >= 40 THEN 1 ELSE 0 END AS e, "
            f"SUM(records) FROM health_counts WHERE {where} GROUP BY service, c, e", [start, app_id, *names, prev, end],
        ):
            f = figures[service]
            if current:
                f.records += int(n)
                f.errors += int(n) if is_error else 0
            else:
                f.prev_records += int(n)
                f.prev_errors += int(n) if is_error else 0
        for service, n, bins in await reader.fetch(
            f"SELECT service, requests, bins FROM health_latency WHERE {where} AND route = ?",
            [app_id, *names, start, end, ALL_ROUTES],
        ):
            add_encoded(figures[service].bins, bins)
            figures[service].requests += int(n)
        collate = "COLLATE BINARY" if reader.dialect == "sqlite" else 'COLLATE "C"'
        rows = await reader.fetch(
            f"SELECT service, fingerprint, SUM(records) AS n, MAX(last_ts), MIN(message {collate}) FROM health_errors "
            f"WHERE {where} GROUP BY service, fingerprint ORDER BY n DESC LIMIT 500", [app_id, *names, start, end],
        )
        top = sorted(((str(s), str(fp), int(n), int(last), str(m)) for s, fp, n, last, m in rows),
                     key=lambda r: (-r[2], r[0], r[1]))
    thresholds = Thresholds.from_settings(settings)
    services: list[dict[str, Any]] = []
    for service, last_seen in known:
        f = figures[service]
        p95 = percentiles(f.bins.items(), [0.95])[0]
        status, reasons = service_status(thresholds, now_us=now_us, last_seen_us=last_seen, records=f.records,
                                         errors=f.errors, requests=f.requests, p95_ms=p95)
        rate = round(f.errors / f.records, 6) if f.records else None
        prev_rate = round(f.prev_errors / f.prev_records, 6) if f.prev_records else None
        services.append({
            "service": service, "status": status, "reasons": reasons, "last_seen": format_ts(last_seen),
            "records": f.records, "errors": f.errors, "error_rate": rate,
            "previous_records": f.prev_records, "previous_error_rate": prev_rate, "trend": _trend(rate, prev_rate),
            "requests": f.requests, "p95_ms": p95,
            "top_errors": [_error(r) for r in top if r[0] == service][:TOP_ERRORS_SERVICE],
        })
    services.sort(key=lambda s: (-SEVERITY[s["status"]], s["service"]))
    worst = services[0]["status"] if services else "silent"
    return {
        "status": worst, "window_minutes": window_minutes, "since": iso(start), "until": iso(end),
        "previous_since": iso(prev), "services": services, "top_errors": [_error(r) for r in top[:TOP_ERRORS_APP]],
    }


def _error(row: tuple[str, str, int, int, str]) -> dict[str, Any]:
    service, fp, n, last, message = row
    return {"service": service, "fingerprint": fp, "count": n, "last_seen": format_ts(last), "message": message}


async def app_status(reader: HealthReader, settings: Settings, app_id: int) -> str:
    """The app's status by the rule (the sidebar dot)."""
    return str((await summary(reader, settings, app_id, settings.health_window_minutes))["status"])

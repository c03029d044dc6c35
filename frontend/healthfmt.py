"""Turning the health API's figures into what the Health view shows (strings and chart rows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from frontend import routes

__all__ = ["BUCKET_FOR_RANGE", "RANGES", "card_of", "latency_rows", "volume_rows"]

# The logs view's presets; buckets chosen so each chart reads hour rows beyond an hour.
RANGES = {"15m": "Last 15 minutes", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"}
BUCKET_FOR_RANGE = {"15m": "1m", "1h": "1m", "24h": "1h", "7d": "6h"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TREND_ARROWS = {"up": "↑", "down": "↓", "flat": "→"}


def _minute(seconds: int) -> str:
    """A logs-view custom time (datetime-local, read as UTC)."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def _label(seconds: int, time_range: str) -> str:
    fmt = "%m-%d %H:%M" if time_range == "7d" else "%H:%M"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime(fmt)


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def logs_link(app_id: str, start: int, end: int, **filters: str) -> str:
    return routes.app_logs(app_id, {"range": "custom", "since": _minute(start), "until": _minute(end), **filters})


def card_of(app_id: str, service: dict[str, Any], volume: int, time_range: str) -> dict[str, str]:
    last_seen = service["last_seen"][:19].replace("T", " ")
    return {
        "service": service["service"] or "(no service)",
        "status": service["status"],
        "reasons": "; ".join(service["reasons"]),
        "error_rate": _percent(service["error_rate"]),
        "previous_error_rate": _percent(service["previous_error_rate"]),
        "trend": service["trend"],
        "trend_arrow": TREND_ARROWS[service["trend"]],
        "volume": f"{volume:,}",
        "p95": _ms(service["p95_ms"]),
        "last_seen": f"{last_seen} UTC",
        "logs_url": routes.app_logs(app_id, {"service": service["service"], "range": time_range}),
    }


def volume_rows(app_id: str, points: list[dict[str, Any]], bucket_s: int, time_range: str) -> list[dict[str, Any]]:
    """Chart rows: a count per level, the error rate in percent, and the logs view of the bucket."""
    rows = []
    for p in points:
        errors = p["ERROR"] + p["CRITICAL"]
        start = p["start_s"]
        rows.append({
            "label": _label(start, time_range), **{lvl: p[lvl] for lvl in LEVELS},
            "error_rate": round(100 * errors / p["total"], 2) if p["total"] else None,
            "logs_url": logs_link(app_id, start, start + bucket_s),
        })
    return rows


def latency_rows(app_id: str, series: dict[str, Any] | None, bucket_s: int, time_range: str) -> list[dict[str, Any]]:
    if series is None:
        return []
    return [{"label": _label(p["start_s"], time_range), "p50": p["p50_ms"], "p95": p["p95_ms"],
             "requests": p["requests"],
             "logs_url": logs_link(app_id, p["start_s"], p["start_s"] + bucket_s, service=series["service"])}
            for p in series["points"]]

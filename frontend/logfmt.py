"""Turning the query API's log dicts into what the logs view shows (strings only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["LEVEL_CHOICES", "MESSAGE_PREVIEW_CHARS", "RANGE_CHOICES", "detail_of", "parse_custom_time", "row_of"]

MESSAGE_PREVIEW_CHARS = 400
RANGE_CHOICES = {"15m": "Last 15 minutes", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
                 "custom": "Custom range"}
# Minimum level shown; "" shows everything.
LEVEL_CHOICES = {"": "All levels", "DEBUG": "Debug and up", "INFO": "Info and up", "WARNING": "Warning and up",
                 "ERROR": "Error and up", "CRITICAL": "Critical only"}


def _time(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def row_of(log: dict[str, Any]) -> dict[str, str]:
    message = log["message"] or ""
    preview = message if len(message) <= MESSAGE_PREVIEW_CHARS else message[:MESSAGE_PREVIEW_CHARS] + "..."
    return {
        "id": str(log["id"]),
        "time": _time(int(log["ts_us"])),
        "level": log["level"],
        "service": log["service"] or "",
        "environment": log["environment"] or "",
        "message": preview.split("\n", 1)[0] if "\n" in preview else preview,
        "has_exception": "1" if log["exception"] else "",
    }


def _exception_text(exception: Any) -> str:
    if not exception:
        return ""
    if isinstance(exception, str):
        return exception
    head = f"{exception.get('type', 'Exception')}: {exception.get('value', '')}"
    if exception.get("traceback"):
        text = str(exception["traceback"]).rstrip()
        return text if head in text else f"{text}\n{head}"
    frames = exception.get("frames") or []
    lines = ["Traceback (most recent call last):"]
    for f in frames:
        lines.append(f'  File "{f.get("filename", "?")}", line {f.get("lineno", "?")}, in {f.get("function", "?")}')
        if f.get("line"):
            lines.append(f"    {f['line']}")
    return "\n".join([*lines, head])


def detail_of(log: dict[str, Any]) -> dict[str, str]:
    """Everything about one log, for the expanded row."""
    context = {
        k: str(log[k])
        for k in ("logger", "environment", "release", "host", "process_id", "thread_name", "trace_id", "request_id")
        if log.get(k) not in (None, "")
    }
    context["received"] = log["received_at"]
    return {
        "id": str(log["id"]),
        "message": log["message"] or "",
        "context": "\n".join(f"{k}: {v}" for k, v in context.items()),
        "attributes": json.dumps(log["attributes"], indent=2, ensure_ascii=False, sort_keys=True)
        if log["attributes"] else "",
        "exception": _exception_text(log["exception"]),
    }


def parse_custom_time(value: str) -> str | None:
    """A datetime-local value ("2026-01-31T14:05"), read as UTC, as the query API's ISO form."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC).isoformat()

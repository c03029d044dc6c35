"""Validation of one ingested log record into a row; errors name the field and the limit.

This is the ingest hot path: keep it to plain dict look-ups and early returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from server.db import BIGINT_MAX, BIGINT_MIN
from server.health_rollup import request_fields

__all__ = [
    "COLUMNS", "EPOCH_S_MAX", "FUTURE_SLACK_US", "LEVELS", "LOG_COLUMNS", "SHORT_MAX", "Limits", "RecordError", "attributes_text",
    "check_message_size", "exception_text", "level_of", "replace_nul", "timestamp_us", "validate_record",
]

LEVELS: dict[str, tuple[int, str]] = {
    "DEBUG": (10, "DEBUG"),
    "INFO": (20, "INFO"),
    "WARNING": (30, "WARNING"),
    "WARN": (30, "WARNING"),
    "ERROR": (40, "ERROR"),
    "CRITICAL": (50, "CRITICAL"),
    "FATAL": (50, "CRITICAL"),
}
_LEVEL_BY_NUMBER = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}

# Order of the values in a row, as the writer inserts them.
COLUMNS = (
    "id", "app_id", "ts", "received_at", "level", "level_name", "service", "logger", "message",
    "attributes", "exception", "environment", "release", "host", "process_id", "thread_name",
    "trace_id", "request_id",
    # request records only (server.health_rollup.request_fields; validate_record's `requests`),
    # for the health aggregates: columns of logs on PostgreSQL, the table log_requests on SQLite
    "route", "duration_us", "duration_bin",
)
LOG_COLUMNS = COLUMNS[:18]  # every log's, in every database's logs table
_SHORT_FIELDS = ("service", "logger", "environment", "release", "host", "thread_name", "trace_id", "request_id")
SHORT_MAX = 256
FUTURE_SLACK_US = 24 * 3600 * 1_000_000
EPOCH_S_MAX = 1e12  # far beyond any accepted timestamp (the year 33658)


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_attributes_bytes: int
    max_attribute_depth: int
    max_traceback_bytes: int


class RecordError(Exception):
    def __init__(self, field: str, message: str) -> None:
        if message.startswith(("is ", "must ", "nests ")):
            message = f"{field} {message}"
        super().__init__(message)
        self.field = field
        self.message = message


def replace_nul(payload: Any) -> Any:
    """`payload` (parsed JSON) with every NUL character in its strings and keys replaced by
    U+FFFD, in place where it can be. PostgreSQL's text and jsonb cannot hold NUL: such a record
    failed the whole commit there, every other request in it too. Both databases store the
    replacement, so they answer alike. Iterative: JSON may nest deeper than Python recurses."""
    if isinstance(payload, str):
        return payload.replace("\x00", "\ufffd")
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any("\x00" in key for key in node):
                items = list(node.items())
                node.clear()
                node.update((key.replace("\x00", "\ufffd"), value) for key, value in items)
            for key, value in node.items():
                if isinstance(value, str):
                    node[key] = value.replace("\x00", "\ufffd")
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    node[i] = value.replace("\x00", "\ufffd")
                elif isinstance(value, (dict, list)):
                    stack.append(value)
    return payload


def timestamp_us(value: Any, now_us: int) -> int:
    if isinstance(value, bool):
        raise RecordError("timestamp", "must be epoch seconds or an ISO 8601 string, not a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise RecordError("timestamp", "must be a finite, non-negative number of epoch seconds")
        if value >= EPOCH_S_MAX:  # also keeps value * 1e6 finite (1e308 seconds made it inf: a 500)
            raise RecordError("timestamp", "is more than 24 hours in the future")
        ts = int(round(value * 1_000_000))
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordError("timestamp", f"{value[:40]!r} is not ISO 8601 (e.g. 2026-12-04T10:00:00Z)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = int(parsed.timestamp() * 1_000_000)
        if ts < 0:
            raise RecordError("timestamp", "must not be before 1970-01-01")
    elif value is None:
        raise RecordError("timestamp", "is required")
    else:
        raise RecordError("timestamp", "must be epoch seconds or an ISO 8601 string")
    if ts > now_us + FUTURE_SLACK_US:
        raise RecordError("timestamp", "is more than 24 hours in the future")
    return ts


def level_of(value: Any) -> tuple[int, str]:
    if isinstance(value, str):
        found = LEVELS.get(value) or LEVELS.get(value.upper())
        if found is not None:
            return found
        raise RecordError("level", f"unknown level {value[:20]!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 50:
        base = max(10, (value // 10) * 10) if value >= 10 else 10
        return value, _LEVEL_BY_NUMBER[min(base, 50)]
    if value is None:
        raise RecordError("level", "is required")
    raise RecordError("level", "must be a level name (DEBUG ... CRITICAL) or a number from 0 to 50")


def _depth(value: Any, limit: int, level: int = 1) -> bool:
    """True when `value` nests no deeper than `limit`."""
    if level > limit:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit, level + 1) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return all(_depth(v, limit, level + 1) for v in value if isinstance(v, (dict, list)))
    return True


def attributes_text(
    attributes: Any, limits: Limits, requests: list[tuple[int, str, int, int]] | None, index: int,
    encoded: bytes | None = None,
) -> str | None:
    """The attributes as stored (JSON text; None when empty); a request record's fields are
    appended to `requests` (see validate_record). `encoded`: orjson's encoding of them, when
    the caller has it."""
    if not isinstance(attributes, dict):
        raise RecordError("attributes", "must be a JSON object")
    if not attributes:
        return None
    if encoded is None:
        encoded = orjson.dumps(attributes)
    if len(encoded) > limits.max_attributes_bytes:
        raise RecordError(
            "attributes",
            f"is {len(encoded)} bytes as JSON; the limit is {limits.max_attributes_bytes} (INGEST_MAX_ATTRIBUTES_BYTES)",
        )
    # Nesting is at most the number of brackets (those in strings only add to it), so the walk
    # is needed only past that: flat attributes skip it.
    deep = encoded.count(b"{") + encoded.count(b"[") > limits.max_attribute_depth
    if deep and not _depth(attributes, limits.max_attribute_depth):
        raise RecordError("attributes", f"nests deeper than {limits.max_attribute_depth} levels (INGEST_MAX_ATTRIBUTE_DEPTH)")
    if "duration_ms" in attributes and requests is not None:
        request = request_fields(attributes)
        if request is not None:
            requests.append((index, *request))
    return encoded.decode()


def exception_text(value: Any, limits: Limits) -> str:
    """The exception as stored: JSON text with its type, value and traceback (frames rendered)."""
    if isinstance(value, str):
        exc: dict[str, Any] = {"type": "", "value": "", "traceback": value}
    elif isinstance(value, dict):
        tb = value.get("traceback")
        frames = value.get("frames")
        if tb is None and isinstance(frames, list):
            tb = _render_frames(frames)
        if tb is not None and not isinstance(tb, str):
            raise RecordError("exception.traceback", "must be a string")
        exc = {"type": str(value.get("type") or ""), "value": str(value.get("value") or ""), "traceback": tb or ""}
    else:
        raise RecordError("exception", "must be an object with type, value and traceback (or frames), or a string")
    text = orjson.dumps(exc)
    if len(text) > limits.max_traceback_bytes:
        raise RecordError(
            "exception", f"is {len(text)} bytes; the limit is {limits.max_traceback_bytes} (INGEST_MAX_TRACEBACK_BYTES)"
        )
    return text.decode()


def check_message_size(message: str, limits: Limits) -> None:
    if len(message.encode()) > limits.max_message_bytes:
        raise RecordError(
            "message",
            f"is {len(message.encode())} bytes; the limit is {limits.max_message_bytes} (INGEST_MAX_MESSAGE_BYTES)",
        )


def _render_frames(frames: list[Any]) -> str:
    lines = ["Traceback (most recent call last):"]
    for frame in frames:
        if not isinstance(frame, dict):
            raise RecordError("exception.frames", "each frame must be an object")
        lines.append(f'  File "{frame.get("filename", "?")}", line {frame.get("lineno", "?")}, in {frame.get("function", "?")}')
        if frame.get("line"):
            lines.append(f"    {frame['line']}")
    return "\n".join(lines)


def validate_record(
    record: Any, app_id: int, default_environment: str, received_at: int, limits: Limits,
    requests: list[tuple[int, str, int, int]] | None = None, index: int = 0,
) -> tuple[Any, ...]:
    """The row for a valid record (LOG_COLUMNS, id left as None); raises RecordError naming
    the field. A request record's (index, route, duration_us, duration_bin) is appended to
    `requests`: kept apart, non-request rows (most) carry nothing more."""
    if not isinstance(record, dict):
        raise RecordError("", "each log must be a JSON object")
    get = record.get
    # Fast paths for what the SDK sends (epoch seconds as a float, a level name in capitals):
    # 12% of this function. Anything else, or anything wrong, takes the full checks.
    value = get("timestamp")
    ts = round(value * 1_000_000) if value.__class__ is float and 0.0 <= value < EPOCH_S_MAX else -1
    if not 0 <= ts <= received_at + FUTURE_SLACK_US:  # not the fast path, or in the future
        ts = timestamp_us(value, received_at)
    value = get("level")
    found = LEVELS.get(value) if value.__class__ is str else None
    level, level_name = found if found is not None else level_of(value)
    message = get("message")
    if not isinstance(message, str):
        raise RecordError("message", "is required and must be a string")
    if len(message) * 4 > limits.max_message_bytes:  # may be over the limit (UTF-8: at most 4 bytes a character)
        check_message_size(message, limits)
    short: list[str] = []
    for name in _SHORT_FIELDS:
        value = get(name)
        if value is None:
            short.append("")
        elif isinstance(value, str):
            if len(value) > SHORT_MAX:
                raise RecordError(name, f"is {len(value)} characters; the limit is {SHORT_MAX}")
            short.append(value)
        else:
            raise RecordError(name, "must be a string")
    service, logger, environment, release, host, thread_name, trace_id, request_id = short
    process_id = get("process_id")
    if process_id is not None and (
        not isinstance(process_id, int) or isinstance(process_id, bool) or not BIGINT_MIN <= process_id <= BIGINT_MAX
    ):
        raise RecordError("process_id", "must be an integer of at most 64 bits")
    attributes = get("attributes")
    attributes_json = None if attributes is None else attributes_text(attributes, limits, requests, index)
    exception = get("exception")
    exception_json = None if exception is None else exception_text(exception, limits)
    return (
        None, app_id, ts, received_at, level, level_name, service, logger, message, attributes_json,
        exception_json, environment or default_environment, release, host, process_id, thread_name,
        trace_id, request_id,
    )

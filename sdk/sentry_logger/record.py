"""What a captured log record looks like, in the buffer and on the wire.

The handler turns a ``logging.LogRecord`` into an ``Entry`` tuple (cheap: no
JSON, no copying of the common case) and the worker thread turns entries
into the JSON objects of docs/ingest-protocol.md. Anything that must be
captured at the moment of the logging call (the formatted message, ``extra``
values, the traceback) is captured in the handler; everything else is done
later, off the application's thread.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, NamedTuple

__all__ = [
    "STANDARD_ATTRIBUTES",
    "Entry",
    "Limits",
    "capture_attributes",
    "capture_exception",
    "clip_utf8",
    "entry_to_wire",
]

# Attributes every LogRecord has, plus the ones formatters add; the rest is `extra`.
STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName",
}
_PROMOTED = ("request_id", "trace_id")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_SCALARS = (str, int, float, bool, type(None))
ENTRY_OVERHEAD = 256  # bytes charged per entry for the tuple and fixed fields


class Limits(NamedTuple):
    """Per-record size limits; records are clipped (not dropped) to fit them.

    The defaults equal the server's defaults (INGEST_MAX_MESSAGE_BYTES,
    INGEST_MAX_TRACEBACK_BYTES, INGEST_MAX_ATTRIBUTES_BYTES,
    INGEST_MAX_ATTRIBUTE_DEPTH), so a record the SDK sends is never refused
    for its size by a server with default settings.
    """

    message_bytes: int = 32 * 1024
    exception_bytes: int = 64 * 1024
    attributes_bytes: int = 16 * 1024
    attribute_depth: int = 5
    attribute_string_chars: int = 8 * 1024
    attribute_items: int = 100


# A captured record waiting in the buffer. A plain tuple (not a NamedTuple):
# building it is on the application's hot path. Fields, by index:
# created, level, message, logger, process, thread_name, attributes,
# exception, request_id, trace_id, size (estimated bytes held).
Entry = tuple[
    float, "str | int", str, str, "int | None", "str | None",
    "dict[str, Any] | None", "dict[str, str] | None", "str | None", "str | None", int,
]
SIZE: Final = 10


def capture_attributes(record: logging.LogRecord, limits: Limits) -> tuple[dict[str, Any] | None, int]:
    """Snapshot the record's ``extra`` fields as JSON-safe values, with their size.

    Values are copied now (a dict mutated after the logging call is sent as it
    was), non-JSON values become ``str()``, containers are cut at
    ``attribute_items`` entries and ``attribute_depth`` levels.
    """
    extras = {k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRIBUTES}
    if not extras:
        return None, 0
    size = [0]
    out = {str(k): _json_safe(v, limits, 1, size) for k, v in extras.items()}
    total = size[0] + sum(len(k) + 4 for k in out)
    if total * 2 > limits.attributes_bytes:  # maybe over: measure exactly (rare)
        total = fit_attributes(out, limits.attributes_bytes)
    return out, total


def fit_attributes(attributes: dict[str, Any], limit: int) -> int:
    """Shrink ``attributes`` in place until its JSON fits ``limit`` bytes; return its size.

    The largest values are replaced by a short marker first, so small fields
    (ids, durations) survive next to one oversized blob.
    """
    size = _json_size(attributes)
    if size <= limit:
        return size
    ranked = sorted(attributes, key=lambda k: _json_size(attributes[k]), reverse=True)
    for key in ranked:
        attributes[key] = f"<dropped by sentry-logger: {_json_size(attributes[key])} bytes, over the attributes limit>"
        size = _json_size(attributes)
        if size <= limit:
            return size
    attributes.clear()
    attributes["sentry_logger.truncated"] = True
    return _json_size(attributes)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace"))


def _json_safe(value: Any, limits: Limits, depth: int, size: list[int]) -> Any:
    if isinstance(value, str):
        if len(value) > limits.attribute_string_chars:
            value = value[: limits.attribute_string_chars] + "\N{HORIZONTAL ELLIPSIS}"
        size[0] += len(value) + 2
        return value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        size[0] += 8
        return value if not isinstance(value, int) or abs(value) < 2**63 else str(value)
    if isinstance(value, float):
        size[0] += 8
        return value if math.isfinite(value) else str(value)
    if depth >= limits.attribute_depth:
        return _json_safe(_to_str(value), limits, depth, size)
    if isinstance(value, Mapping):
        items = list(value.items())[: limits.attribute_items]
        return {str(k): _json_safe(v, limits, depth + 1, size) for k, v in items}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, limits, depth + 1, size) for v in list(value)[: limits.attribute_items]]
    return _json_safe(_to_str(value), limits, depth, size)


def _to_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the record
        return f"<unprintable {type(value).__name__}>"


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def capture_exception(exc_info: ExcInfo, limits: Limits) -> dict[str, str]:
    """Type, value and formatted traceback of ``exc_info`` (formatted now: frames die later)."""
    etype, value, tb = exc_info
    module = getattr(etype, "__module__", "builtins")
    name = etype.__qualname__ if module in ("builtins", "__main__") else f"{module}.{etype.__qualname__}"
    try:
        text = "".join(traceback.format_exception(etype, value, tb))
    except Exception:
        text = f"<traceback unavailable for {name}>"
    exception = {"type": name[:256], "value": _to_str(value)[: limits.attribute_string_chars], "traceback": text}
    size = _json_size(exception)
    while size > limits.exception_bytes and exception["traceback"]:
        # keep the end: the innermost frames and the exception line matter most
        tb_text = exception["traceback"]
        keep = max(0, len(tb_text) - (size - limits.exception_bytes) - 64)
        exception["traceback"] = "\N{HORIZONTAL ELLIPSIS}(truncated)\n" + tb_text[len(tb_text) - keep:] if keep else ""
        size = _json_size(exception)
    return exception


def promoted_fields(attributes: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """``request_id``/``trace_id`` passed in ``extra`` become top-level fields."""
    if not attributes:
        return None, None
    found = [attributes.pop(k) if isinstance(attributes.get(k), str) else None for k in _PROMOTED]
    return found[0], found[1]


def level_for_wire(levelname: str, levelno: int) -> str | int:
    """The level name for standard levels; the clamped number for custom ones."""
    return levelname if levelname in _LEVELS else max(0, min(50, levelno))


def clip_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, marking the cut."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    marker = "\N{HORIZONTAL ELLIPSIS}[truncated]"
    return data[: limit - len(marker.encode())].decode("utf-8", "ignore") + marker


def entry_to_wire(entry: Entry, common: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """The JSON object for one record (``common`` holds service, host, ...)."""
    (created, level, message, logger, process, thread_name, attributes, exception,
     request_id, trace_id, _size) = entry
    wire: dict[str, Any] = {
        "timestamp": created,
        "level": level,
        "message": clip_utf8(message, limits.message_bytes),
        "logger": logger[:256],
        **common,
    }
    if process is not None:
        wire["process_id"] = process
    if thread_name:
        wire["thread_name"] = thread_name[:256]
    if attributes:
        wire["attributes"] = attributes
    if exception:
        wire["exception"] = exception
    if request_id:
        wire["request_id"] = request_id[:256]
    if trace_id:
        wire["trace_id"] = trace_id[:256]
    return wire

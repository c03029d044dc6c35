"""The fast path of POST /ingest, for bodies shaped as the SDK (and most shippers) send them.

msgspec parses and type-checks the whole body at once, in C, into the structs below: 1.9
instead of 3.0 us a log for parsing and validation together (`bench/ingest_validate_cost.py`).
The structs only admit what `server.ingest_validate.validate_record` accepts, and the rest of
the checks are that function's own (its helpers, or the same fast tests): other shippers'
ISO 8601 timestamps and lower-case or numeric levels take the fast path too. Anything else (a
type the structs do not take, a record that would be rejected, a value past a limit, a NUL
character) makes `fast_payload` or `fast_rows` answer None, and the request goes the general
way (orjson, then `validate_record` record by record), which names every problem. So the fast
path changes no answer: tests/server/test_ingest_fast.py compares both on generated bodies.
The rows of the common logs are made in C when built (server._speedups.log_rows; 0.7 instead of
1.4 us a log for parsing, validation and rows), the others by `_log_row`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson

from server.db import BIGINT_MAX, BIGINT_MIN
from server.ingest_validate import (
    EPOCH_S_MAX,
    FUTURE_SLACK_US,
    LEVELS,
    SHORT_MAX,
    Limits,
    RecordError,
    attributes_text,
    check_message_size,
    exception_text,
    level_of,
    timestamp_us,
)
from server.native import log_rows, set_log_type

__all__ = ["FastLog", "FastPayload", "fast_payload", "fast_rows"]

_Short = Annotated[str, msgspec.Meta(max_length=SHORT_MAX)] | None


# gc=False (the three structs): they hold decoded JSON only and never take part in a reference
# cycle, so the garbage collector need not track them: one of the three or four tracked objects a
# log makes on its way to the database, each counted toward the next collection and walked by it.
class _Exception(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """What the SDK sends; frames, or anything else, take the general path."""

    type: str | None = None
    value: str | None = None
    traceback: str | None = None


class FastLog(msgspec.Struct, gc=False):
    timestamp: float | str  # JSON integers arrive as floats
    level: str | int
    message: str
    service: _Short = None
    logger: _Short = None
    environment: _Short = None
    release: _Short = None
    host: _Short = None
    thread_name: _Short = None
    trace_id: _Short = None
    request_id: _Short = None
    process_id: Annotated[int, msgspec.Meta(ge=BIGINT_MIN, le=BIGINT_MAX)] | None = None
    attributes: dict[str, Any] | None = None
    exception: str | _Exception | None = None


class FastPayload(msgspec.Struct, gc=False):
    logs: list[FastLog]
    api_key: str | None = None
    batch_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    client_report: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(FastPayload)
if set_log_type is not None:
    set_log_type(FastLog)


def fast_payload(body: bytes) -> FastPayload | None:
    """The body as a FastPayload, or None: take the general path."""
    if b"\\u0000" in body:  # NUL: replaced on the general path (server.ingest_validate.replace_nul)
        return None
    try:
        return _DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def fast_rows(
    logs: list[FastLog], app_id: int, default_environment: str, received_at: int, limits: Limits,
    requests: list[tuple[int, str, int, int]],
) -> list[tuple[Any, ...]] | None:
    """The rows of `logs` as `validate_record` makes them, request fields appended to
    `requests`; None when any log is not for the fast path (then `requests` is to be
    dropped). The common logs in C when built (server._speedups.log_rows), the others by
    `_log_row`."""
    def slow(log: FastLog, index: int) -> tuple[Any, ...] | None:
        return _log_row(log, index, app_id, default_environment, received_at, limits, requests)

    if log_rows is not None:
        return log_rows(logs, app_id, default_environment, received_at, received_at + FUTURE_SLACK_US,
                         limits.max_message_bytes // 4, limits.max_attributes_bytes, LEVELS, orjson.dumps, slow)
    rows = []
    for index, log in enumerate(logs):
        row = slow(log, index)
        if row is None:
            return None
        rows.append(row)
    return rows


def _log_row(
    log: FastLog, index: int, app_id: int, default_environment: str, received_at: int, limits: Limits,
    requests: list[tuple[int, str, int, int]],
) -> tuple[Any, ...] | None:
    """One log's row (fast_rows), or None."""
    try:
        value = log.timestamp
        ts = (round(value * 1_000_000) if value.__class__ is float and 0.0 <= value < EPOCH_S_MAX
              else timestamp_us(value, received_at))
        if not 0 <= ts <= received_at + FUTURE_SLACK_US:
            return None
        name = log.level
        level = (LEVELS.get(name) if isinstance(name, str) else None) or level_of(name)
        message = log.message
        if len(message) * 4 > limits.max_message_bytes:
            check_message_size(message, limits)
        attributes = log.attributes
        attributes_json = None
        if attributes:
            encoded = orjson.dumps(attributes)
            # Flat (one brace, no bracket) and not a request record, as most are: nothing more
            # to check than the size. Otherwise the general checks. (Bytes searched for an
            # int: `b"[" in` or a slice cost several times as much.)
            if len(encoded) <= limits.max_attributes_bytes and 91 not in encoded and encoded.count(123) == 1 \
                    and "duration_ms" not in attributes:
                attributes_json = encoded.decode()
            else:
                attributes_json = attributes_text(attributes, limits, requests, index, encoded)
        exc = log.exception
        exception = exc if exc is None or isinstance(exc, str) else {
            "type": exc.type, "value": exc.value, "traceback": exc.traceback}
        return (
            None, app_id, ts, received_at, level[0], level[1], log.service or "", log.logger or "", message,
            attributes_json,
            None if exception is None else exception_text(exception, limits),
            log.environment or default_environment, log.release or "", log.host or "", log.process_id,
            log.thread_name or "", log.trace_id or "", log.request_id or "",
        )
    except (RecordError, TypeError):  # TypeError: orjson cannot encode an integer past 64 bits (general JSON gives a float)
        return None

"""The ``logging.Handler`` that ``init()`` attaches to the root logger.

``emit`` is on the application's hot path: it formats the message, snapshots
``extra`` fields and exception info (only when present), builds one tuple and
appends it to the bounded buffer. No I/O, no JSON, no locks other than the
buffer's, and it never raises into the caller: a record it cannot capture is
counted as ``capture_failed``.

It ignores the SDK's own loggers (``sentry_logger.*``) and every record
emitted on the worker thread (which is where the HTTP client logs), so the
SDK can never feed on itself.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .buffer import SMALL_ENTRY_BYTES
from .context import request_id_var, trace_id_var
from .record import (
    ENTRY_OVERHEAD,
    Entry,
    capture_attributes,
    capture_exception,
    fit_attributes,
    level_for_wire,
    promoted_fields,
)

if TYPE_CHECKING:
    from .client import Client

__all__ = ["SentryLoggerHandler"]

_BASE_FIELDS = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_STANDARD_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
_ENTRY_OVERHEAD = ENTRY_OVERHEAD
_SMALL = SMALL_ENTRY_BYTES
_get_request_id = request_id_var.get
_get_trace_id = trace_id_var.get


class SentryLoggerHandler(logging.Handler):
    """Captures records into the client's buffer; see the module docstring."""

    def __init__(self, client: Client, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.client = client
        self._buffer = client.buffer
        self._items = client.buffer.items
        self._max_records = client.buffer.max_records
        self._batch_size = client.buffer.batch_size
        self._counters = client.counters
        self._worker = client.worker
        self._limits = client.options.limits
        self._max_chars = client.options.limits.message_bytes
        self._max_record_bytes = client.options.max_record_bytes

    def handle(self, record: logging.LogRecord) -> bool:
        """Capture ``record`` (filters applied; no handler lock: the buffer is thread-safe)."""
        if self.filters:
            result = self.filter(record)
            if not result:
                return False
            if isinstance(result, logging.LogRecord):
                record = result
        # Everything below is emit(), inlined: it runs for every record.
        try:
            worker = self._worker
            if record.thread == worker.thread_ident or record.name.startswith("sentry_logger"):
                return True
            if record.thread is None and threading.get_ident() == worker.thread_ident:
                return True  # logging.logThreads = False
            if not worker.started:
                worker.start()
            try:
                message = record.getMessage()
            except Exception:
                message = f"{record.msg!s} [sentry-logger: formatting with args {record.args!r} failed]"
            if len(message) > self._max_chars:
                message = message[: self._max_chars] + _ELLIPSIS
            size = _ENTRY_OVERHEAD + len(message)
            attributes = exception = request_id = trace_id = None
            if len(record.__dict__) > _BASE_FIELDS:
                attributes, extra_size = capture_attributes(record, self._limits)
                size += extra_size
                request_id, trace_id = promoted_fields(attributes)
            if record.exc_info and record.exc_info[0] is not None:
                exception = capture_exception(record.exc_info, self._limits)
                size += len(exception["traceback"]) + len(exception["value"])
            if record.stack_info:
                attributes = attributes or {}
                attributes["stack_info"] = record.stack_info[-self._limits.attribute_string_chars:]
                size += fit_attributes(attributes, self._limits.attributes_bytes)
            levelname = record.levelname
            entry: Entry = (
                record.created,
                levelname if levelname in _STANDARD_LEVELS else level_for_wire(levelname, record.levelno),
                message,
                record.name,
                record.process,
                record.threadName,
                attributes,
                exception,
                request_id or _get_request_id(),
                trace_id or _get_trace_id(),
                size,
            )
            items = self._items
            if size <= _SMALL and len(items) < self._max_records:
                items.append(entry)  # the common case, lock-free (see buffer.py)
                if len(items) == self._batch_size:
                    self._buffer.ready.set()
            elif size > self._max_record_bytes:
                self._counters.drop("too_large")
            elif not self._buffer.put(entry):
                self._counters.drop("queue_full")
        except Exception:
            try:
                self._counters.drop("capture_failed")
            except Exception:
                pass
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def close(self) -> None:
        """Detach from logging's registry only.

        ``logging.config.dictConfig`` (run by uvicorn, gunicorn, Django at
        startup) closes every existing handler even when it leaves the root
        logger alone; stopping the worker here would silently end log
        delivery. The worker stops at ``sentry_logger.shutdown()`` or exit.
        """
        super().close()

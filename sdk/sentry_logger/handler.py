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
from typing import TYPE_CHECKING

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


class SentryLoggerHandler(logging.Handler):
    """Captures records into the client's buffer; see the module docstring."""

    def __init__(self, client: Client, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.client = client
        self._buffer = client.buffer
        self._counters = client.counters
        self._worker = client.worker
        self._limits = client.options.limits
        self._max_chars = client.options.limits.message_bytes
        self._max_record_bytes = client.options.max_record_bytes

    def handle(self, record: logging.LogRecord) -> bool:
        # The buffer is thread-safe, so skip Handler.handle's per-handler RLock.
        result = self.filter(record)
        if result:
            self.emit(record if result is True else result if isinstance(result, logging.LogRecord) else record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            worker = self._worker
            if record.thread == worker.thread_ident or record.name.startswith("sentry_logger"):
                return
            if not worker.started:
                worker.start()
            try:
                message = record.getMessage()
            except Exception:
                message = f"{record.msg!s} [sentry-logger: formatting with args {record.args!r} failed]"
            if len(message) > self._max_chars:
                message = message[: self._max_chars] + _ELLIPSIS
            size = ENTRY_OVERHEAD + len(message)
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
            entry = Entry(
                record.created,
                levelname if levelname in _STANDARD_LEVELS else level_for_wire(levelname, record.levelno),
                message,
                record.name,
                record.process,
                record.threadName,
                attributes,
                exception,
                request_id or request_id_var.get(),
                trace_id or trace_id_var.get(),
            )
            if size > self._max_record_bytes:
                self._counters.drop("too_large")
            elif not self._buffer.put(entry, size):
                self._counters.drop("queue_full")
        except Exception:
            try:
                self._counters.drop("capture_failed")
            except Exception:
                pass

    def close(self) -> None:
        """Detach from logging's registry only.

        ``logging.config.dictConfig`` (run by uvicorn, gunicorn, Django at
        startup) closes every existing handler even when it leaves the root
        logger alone; stopping the worker here would silently end log
        delivery. The worker stops at ``sentry_logger.shutdown()`` or exit.
        """
        super().close()

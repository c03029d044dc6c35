"""Per-request context attached to every record logged while handling a request.

The request middleware sets these; application code may too (for a job id,
say). They are ``contextvars``, so they follow asyncio tasks and do not leak
between concurrent requests.
"""

from __future__ import annotations

import contextvars
import re

__all__ = ["parse_traceparent", "request_id_var", "trace_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("sentry_logger_request_id", default=None)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("sentry_logger_trace_id", default=None)

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header, or None."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)

"""What the ASGI and WSGI middlewares share: path exclusion and the access record."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterable
from types import TracebackType

__all__ = ["PathFilter", "log_request", "new_request_id"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class PathFilter:
    """Paths not to log: exact matches, or prefixes written with a trailing ``*``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        self._exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def excluded(self, path: str) -> bool:
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))


def new_request_id(incoming: str | None) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a fresh uuid4 hex."""
    if incoming and len(incoming) <= 128 and incoming.isprintable():
        return incoming
    return uuid.uuid4().hex


def log_request(
    logger: logging.Logger,
    *,
    method: str,
    path: str,
    route: str | None,
    status_code: int,
    duration_ms: float,
    exc_info: ExcInfo | None = None,
    request_id: str | None = None,
    trace_id: str | None = None,
) -> None:
    """One record per request; ERROR with the traceback for 5xx and unhandled exceptions."""
    level = logging.ERROR if exc_info is not None or status_code >= 500 else logging.INFO
    if not logger.isEnabledFor(level):
        return
    attributes: dict[str, object] = {
        "method": method,
        "path": path,
        "status_code": status_code,
        "duration_ms": round(duration_ms, 3),
    }
    if route:
        attributes["route"] = route
    # passed explicitly: a WSGI body may finish after the request's context is gone
    if request_id:
        attributes["request_id"] = request_id
    if trace_id:
        attributes["trace_id"] = trace_id
    if exc_info is not None:
        message = f"{method} {path} raised {exc_info[0].__name__} after {duration_ms:.1f} ms"
    else:
        message = f"{method} {path} {status_code} in {duration_ms:.1f} ms"
    try:
        logger.log(level, message, extra=attributes, exc_info=exc_info, stacklevel=2)
    except Exception:  # the request's outcome must not depend on logging
        if logging.raiseExceptions:
            sys.stderr.write("sentry-logger: could not log a request record\n")

"""WSGI request middleware (Flask, Django, any WSGI app).

::

    app.wsgi_app = SentryLoggerWSGIMiddleware(app.wsgi_app)          # Flask
    application = SentryLoggerWSGIMiddleware(get_wsgi_application())  # Django

Same record as the ASGI middleware: one per request on ``http.access`` with
``method``, ``path``, ``status_code`` and ``duration_ms`` (measured until the
response body is fully sent), ERROR with the traceback for exceptions that
escape the app (re-raised). Frameworks that turn exceptions into 500 pages
themselves (Flask, Django) still log the exception through ``logging``,
which the SDK captures.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._access import PathFilter, log_request, new_request_id
from .context import parse_traceparent, request_id_var, trace_id_var

__all__ = ["SentryLoggerWSGIMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class SentryLoggerWSGIMiddleware:
    """Wraps a WSGI app; see the module docstring."""

    def __init__(self, app: WSGIApp, *, exclude_paths: Iterable[str] = (), logger_name: str = "http.access") -> None:
        self.app = app
        self._paths = PathFilter(exclude_paths)
        self._logger = logging.getLogger(logger_name)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self._paths.excluded(path):
            return self.app(environ, start_response)
        start = time.perf_counter()
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        trace_id = parse_traceparent(environ.get("HTTP_TRACEPARENT"))
        rid_token = request_id_var.set(request_id)
        trace_token = trace_id_var.set(trace_id)
        status = [500]

        def start_with_status(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                status[0] = int(status_line.split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        def finish(exc_info: Any) -> None:
            log_request(self._logger, method=environ.get("REQUEST_METHOD", "GET"), path=path, route=None,
                        status_code=500 if exc_info else status[0],
                        duration_ms=(time.perf_counter() - start) * 1000.0, exc_info=exc_info,
                        request_id=request_id, trace_id=trace_id)

        try:
            body = self.app(environ, start_with_status)
        except Exception:
            finish(sys.exc_info())
            request_id_var.reset(rid_token)
            trace_id_var.reset(trace_token)
            raise
        request_id_var.reset(rid_token)
        trace_id_var.reset(trace_token)
        return _ClosingBody(body, finish)


class _ClosingBody:
    """Iterates the app's body and logs when it is exhausted or closed (once)."""

    def __init__(self, body: Iterable[bytes], finish: Callable[[Any], None]) -> None:
        self._body = body
        self._finish: Callable[[Any], None] | None = finish

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception:
            self._done(sys.exc_info())
            raise
        self._done(None)  # body fully sent; close() may come much later, or never

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(None)

    def _done(self, exc_info: Any) -> None:
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish(exc_info)

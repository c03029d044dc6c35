"""ASGI request middleware (Starlette, FastAPI, any ASGI app).

::

    app = FastAPI()
    app.add_middleware(SentryLoggerMiddleware, exclude_paths=["/health", "/static/*"])

Logs one record per HTTP request on the ``http.access`` logger with
``method``, ``path``, ``route`` (the matched route template, when the
framework records one in the scope), ``status_code`` and ``duration_ms``
attributes; unhandled exceptions are logged at ERROR with their traceback and
re-raised. While the request runs, every record logged carries its
``request_id`` (the incoming ``X-Request-ID`` or a new one) and the
``trace_id`` of a W3C ``traceparent`` header.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ._access import PathFilter, log_request, new_request_id
from .context import parse_traceparent, request_id_var, trace_id_var

__all__ = ["SentryLoggerMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SentryLoggerMiddleware:
    """Pure ASGI middleware; websocket scopes pass through, lifespan shutdown flushes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        exclude_paths: Iterable[str] = (),
        logger_name: str = "http.access",
    ) -> None:
        self.app = app
        self._paths = PathFilter(exclude_paths)
        self._logger = logging.getLogger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _flush_at_shutdown(send))
            return
        if scope["type"] != "http" or self._paths.excluded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = _headers(scope)
        rid_token = request_id_var.set(new_request_id(headers.get("x-request-id")))
        trace_token = trace_id_var.set(parse_traceparent(headers.get("traceparent")))
        status = [500]

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            self._log(scope, max(status[0], 500), start, sys.exc_info())
            raise
        else:
            self._log(scope, status[0], start, None)
        finally:
            request_id_var.reset(rid_token)
            trace_id_var.reset(trace_token)

    def _log(self, scope: Scope, status: int, start: float, exc_info: Any) -> None:
        route = scope.get("route")
        log_request(
            self._logger,
            method=scope.get("method", "GET"),
            path=scope.get("path", ""),
            route=getattr(route, "path", None) if route is not None else None,
            status_code=status,
            duration_ms=(time.perf_counter() - start) * 1000.0,
            exc_info=exc_info,
        )


def _flush_at_shutdown(send: Send) -> Send:
    """Flush when the server reports lifespan shutdown.

    uvicorn (0.29+) re-raises SIGTERM after a graceful shutdown, so the process
    dies by the signal and ``atexit`` never runs; lifespan shutdown is the last
    moment the SDK is told about. During an outage the flush moves what is
    buffered into the spool.
    """

    async def send_after_flush(message: Message) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            from .lifecycle import get_client

            client = get_client()
            if client is not None and not client.flush(client.options.shutdown_timeout):
                where = (f"spooled to {client.spool.directory}" if client.spool is not None
                         else "kept in memory only: lost if the process is killed now")
                problem = client.worker.last_problem or "timeout"
                sys.stderr.write(f"sentry-logger: log records not delivered at server shutdown ({problem}); {where}\n")
        await send(message)

    return send_after_flush


def _headers(scope: Scope) -> dict[str, str]:
    wanted = (b"x-request-id", b"traceparent")
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in wanted:
            out[name.decode("latin-1")] = value.decode("latin-1")
    return out

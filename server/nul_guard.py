"""Plain ASGI middleware: a request with NUL (%00) in a query parameter gets a clear 400.

PostgreSQL's text cannot hold NUL, so such a parameter reaching a query (a service filter, a
device code) failed there with a 500; SQLite would have answered. No parameter of this API
can mean anything with NUL in it, so it is refused before any route runs, alike on both
databases. (The live tail's filters are refused by server.logs_query.parse_log_query, with
the tail's own closing frame; /ingest replaces NUL, server.ingest_validate.replace_nul; JSON
API bodies refuse it, server.api._body.)
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["NulGuard"]


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%00" in scope["query_string"]:
            names = [name for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                     if "\x00" in name or "\x00" in value]
            if names:
                field = names[0].replace("\x00", "\ufffd")
                body = {"error": {"code": "invalid_parameter", "field": field,
                                  "message": f"query parameter {field} must not contain NUL characters (%00)"}}
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)

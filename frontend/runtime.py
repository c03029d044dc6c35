"""The bridge between the dashboard and the server it runs inside (one process, one port).

`api_app()` is the Starlette API/ingest application that `rx.App(api_transformer=...)`
mounts in front of Reflex. Mounted applications do not get lifespan events, so
`lifespan` (registered as a Reflex lifespan task) runs the Starlette app's own lifespan,
and `_ResourcesMiddleware` hands what it opened (database, writer, hub, ...) to every
request as `request.state`, exactly as when the API runs alone. Event handlers reach the
same objects through `resources()`.

Identity: Reflex copies the Cookie header of the websocket upgrade request into every
event, so `signed_in_user(router)` re-reads the session cookie from there and re-validates
it against the sessions table on every call: the header is frozen at connect time, so a
session deleted since then must stop working at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from server.accounts import User, session_user
from server.app import create_app
from server.auth import SESSION_COOKIE
from server.settings import Settings, load_settings

__all__ = [
    "api_app", "client_connected", "configure", "lifespan", "resources", "session_id_from", "set_reflex_app", "settings",
    "signed_in_user",
]

_settings: Settings | None = None
_api: Starlette | None = None
_resources: dict[str, Any] = {}


def configure(value: Settings) -> None:
    """Use these settings (the CLI's) instead of reading the environment. Call before import of the app."""
    global _settings
    _settings = value


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


class _ResourcesMiddleware:
    """Put the lifespan's resources into every request's state (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _resources:
            state = scope.setdefault("state", {})
            for name, value in _resources.items():
                state.setdefault(name, value)
        await self.app(scope, receive, send)


def api_app() -> Starlette:
    """The server's Starlette application, built once, ready to be Reflex's api_transformer."""
    global _api
    if _api is None:
        _api = create_app(settings())
        _api.add_middleware(_ResourcesMiddleware)
    return _api


@contextlib.asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    """Run the API's lifespan (database, writer, hub) for as long as the Reflex app runs."""
    app = api_app()
    async with app.router.lifespan_context(app) as state:
        _resources.update(state or {})
        try:
            yield
        finally:
            _resources.clear()


def resources() -> dict[str, Any]:
    if not _resources:
        raise RuntimeError("the server's resources are not open (lifespan not running)")
    return _resources


def session_id_from(cookie_header: str) -> str | None:
    return cookie_parser(cookie_header or "").get(SESSION_COOKIE) or None


async def signed_in_user(router: Any) -> User | None:
    """The user of the session cookie this tab connected with, if that session is still valid."""
    session_id = session_id_from(router.headers.cookie)
    if not session_id or not _resources:
        return None
    found = await session_user(_resources["db"], session_id)
    return None if found is None else found[0]


_reflex_app: Any = None


def set_reflex_app(app: Any) -> None:
    global _reflex_app
    _reflex_app = app


def client_connected(client_token: str) -> bool:
    """Whether the tab with this Reflex client token has a websocket open to this process."""
    namespace = getattr(_reflex_app, "event_namespace", None)
    if namespace is None:
        return True
    return client_token in namespace.token_to_sid

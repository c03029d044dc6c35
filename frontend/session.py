"""The signed-in user and their apps: the base state of every signed-in page.

Every handler that touches data calls `_require_user()` first, which re-validates the
session cookie against the sessions table (see `frontend.runtime`); pages gate what they
render on `rx.State.is_hydrated` and `SessionState.signed_in`, which `on_load` recomputes.
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from frontend import routes, runtime
from server import apps
from server.accounts import User, delete_session
from server.errors import ApiError
from server.health_status import app_status

__all__ = ["SessionState", "SignedOut", "app_health", "readable"]

ERROR_LEVEL = 40


class SignedOut(Exception):
    """The tab's session is gone (signed out elsewhere, expired): go to the sign-in page."""


def readable(exc: Exception) -> str:
    """A message for people: the API's own wording for API errors, a generic one otherwise."""
    if isinstance(exc, ApiError):
        return exc.message[:1].upper() + exc.message[1:]
    return "Something went wrong on the server; please try again."


async def app_health(db: Any, app_id: int) -> str:
    """The app's status by the health rule (server.health_status, docs/health.md), as the dot's
    states: "ok" (healthy), "errors" (degraded or failing) or "silent"."""
    status = await app_status(await runtime.resources()["health_reader"].fresh(), runtime.settings(), app_id)
    return {"healthy": "ok", "silent": "silent"}.get(status, "errors")


class SessionState(rx.State):
    signed_in: bool = False
    user_email: str = ""
    user_name: str = ""
    # The sidebar: [{"id", "name", "health"}], ids as strings.
    apps: list[dict[str, str]] = rx.field(default_factory=list)
    page_error: str = ""
    # This server's address, as SDKs should be configured with it.
    dsn: str = ""

    async def _require_user(self) -> User:
        user = await runtime.signed_in_user(self.router)
        if user is None:
            self.signed_in = False
            self.user_email = self.user_name = ""
            self.apps = []
            raise SignedOut()
        self.signed_in = True
        self.user_email, self.user_name = user.email, user.name or user.email
        return user

    async def _open_app_of_url(self, user: User) -> bool:
        """For app pages (their state declares app_id, app_name and loaded): the app in the URL if
        `user` owns it, else the page says it does not exist. False when there is nothing to show."""
        try:
            app = await apps.get_app(runtime.resources()["db"], user, routes.app_id_in(self.router.url.path))
        except ApiError:
            self.app_id = self.app_name = ""
            self.page_error = "This app does not exist, or it is not yours."
            self.loaded = True
            return False
        self.app_id, self.app_name = str(app["id"]), app["name"]
        return True

    def _to_signin(self) -> rx.event.EventSpec:
        url = self.router.url
        next_path = url.path + (f"?{url.query}" if url.query else "")
        return rx.redirect(routes.signin(next_path or "/"))

    async def _refresh_apps(self, user: User) -> None:
        db = runtime.resources()["db"]
        rows = await apps.list_apps(db, user)
        self.apps = [
            {"id": str(r["id"]), "name": r["name"], "health": await app_health(db, int(r["id"]))} for r in rows
        ]

    async def _load_session(self) -> User | None:
        """Who is this, and their apps; None when signed out (then redirect with `_to_signin`)."""
        self.page_error = ""
        self.dsn = runtime.settings().base_url
        try:
            user = await self._require_user()
        except SignedOut:
            return None
        await self._refresh_apps(user)
        return user

    @rx.event
    async def load_session(self) -> Any:
        """on_load of a signed-in page without its own data."""
        if await self._load_session() is None:
            return self._to_signin()
        return None

    @rx.event
    async def sign_out(self) -> Any:
        session_id = runtime.session_id_from(self.router.headers.cookie)
        if session_id:
            await delete_session(runtime.resources()["db"], session_id)
        self.signed_in = False
        self.user_email = self.user_name = ""
        self.apps = []
        return rx.redirect(routes.SIGNIN)

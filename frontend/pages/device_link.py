"""/sdk/link?code=...: approve or deny a terminal's `sentry-logger init` request.

Signed-out visitors go through sign-in and come back here. The page shows what the terminal
asked for (app name, environment, the code, where the request came from); only a click on
Authorize or Deny changes anything. Both call `server.device` in-process with the user
re-validated from the session cookie, the same functions as POST /sdk/device/complete and
/deny (and so the same single-use codes and wrong-code limits).
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from frontend import routes, runtime, styles
from frontend.session import SessionState, SignedOut, readable
from server import device
from server.accounts import User
from server.errors import ApiError

__all__ = ["DeviceLinkState", "device_link_page"]


class DeviceLinkState(SessionState):
    loaded: bool = False
    code: str = ""
    code_input: str = ""
    app_name: str = ""
    environment: str = ""
    requested_from: str = ""
    existing_app: bool = False
    # "" (nothing to decide yet), "ask" (showing a request), "approved", "denied"
    step: str = ""
    result_app: str = ""
    key_prefix: str = ""
    error: str = ""
    busy: bool = False

    def _address(self) -> str:
        return str(self.router.session.client_ip or "")

    def _resources(self) -> tuple[Any, Any]:
        res = runtime.resources()
        return res["db"], res["device_code_limiter"]

    async def _show(self, user: User, code: str) -> None:
        self.error, self.step = "", ""
        db, limiter = self._resources()
        try:
            info = await device.lookup(db, limiter, user, code, self._address())
        except ApiError as exc:
            self.error = readable(exc)
            return
        self.code, self.app_name, self.environment = info["user_code"], info["app_name"], info["environment"]
        self.requested_from, self.existing_app = info["requested_from"], bool(info["existing_app"])
        self.step = "ask"

    @rx.event
    async def load(self) -> Any:
        self.loaded, self.step, self.error, self.code = False, "", "", ""
        try:
            user = await self._require_user()
        except SignedOut:
            return self._to_signin()
        code = self.router.url.query_parameters.get("code", "")
        if code:
            await self._show(user, code)
        self.loaded = True
        return None

    @rx.event
    async def set_code_input(self, value: str) -> None:
        self.code_input = value

    @rx.event
    async def submit_code(self) -> Any:
        try:
            user = await self._require_user()
        except SignedOut:
            return self._to_signin()
        await self._show(user, self.code_input)
        return None

    async def _decide(self, approve: bool) -> Any:
        if self.busy or self.step != "ask":
            return None
        self.busy = True
        try:
            user = await self._require_user()
            db, limiter = self._resources()
            out = await device.decide(db, limiter, user, self.code, self._address(), approve=approve)
        except SignedOut:
            return self._to_signin()
        except ApiError as exc:
            self.error, self.step = readable(exc), ""
            return None
        finally:
            self.busy = False
        self.step = out["status"]
        if approve:
            self.result_app, self.key_prefix = out["app"]["name"], out["key_prefix"]
        return None

    @rx.event
    async def authorize(self) -> Any:
        return await self._decide(True)

    @rx.event
    async def deny(self) -> Any:
        return await self._decide(False)


def _row(label: str, value: rx.Var | str, id_: str) -> rx.Component:
    return rx.hstack(
        rx.text(label, color=styles.MUTED, size="2", min_width="110px"),
        rx.text(value, weight="medium", size="2", id=id_),
        width="100%",
    )


def _ask() -> rx.Component:
    s = DeviceLinkState
    return rx.vstack(
        rx.text("A terminal asks to be linked to your account with a new API key.", size="2"),
        rx.box(
            rx.text(s.code, id="device-code", style={**styles.mono, "font_size": "22px", "letter_spacing": "0.12em"}),
            padding=styles.SPACE["md"], border=styles.BORDER, border_radius=styles.RADIUS, width="100%",
            text_align="center",
        ),
        _row("App", s.app_name, "device-app-name"),
        _row("Environment", s.environment, "device-environment"),
        _row("Requested from", s.requested_from, "device-requested-from"),
        rx.text(rx.cond(s.existing_app, "Your existing app of this name gets a new key.",
                        "A new app with this name will be created in your account."), size="1", color=styles.MUTED),
        rx.callout("Only authorize if you started `sentry-logger init` yourself and the terminal shows this code.",
                   icon="shield_alert", color_scheme="amber", size="1"),
        rx.hstack(
            rx.button("Deny", variant="outline", color_scheme="gray", on_click=DeviceLinkState.deny,
                      disabled=s.busy, id="device-deny"),
            rx.button("Authorize", on_click=DeviceLinkState.authorize, loading=s.busy, id="device-authorize"),
            justify="end", width="100%",
        ),
        spacing="3", width="100%",
    )


def _enter_code() -> rx.Component:
    s = DeviceLinkState
    return rx.vstack(
        rx.text("Enter the code your terminal shows.", size="2"),
        rx.hstack(
            rx.input(value=s.code_input, on_change=DeviceLinkState.set_code_input, placeholder="WDJB-MJHT",
                     id="device-code-input", style=styles.mono, width="100%"),
            rx.button("Continue", on_click=DeviceLinkState.submit_code, id="device-code-submit"),
            width="100%",
        ),
        spacing="3", width="100%",
    )


def _done() -> rx.Component:
    s = DeviceLinkState
    return rx.vstack(
        rx.cond(
            s.step == "approved",
            rx.callout(rx.text("Authorized: the terminal receives a new key for ", rx.text.strong(s.result_app),
                               " (", s.key_prefix, "...). You can close this page."),
                       icon="circle_check", color_scheme="green", id="device-result"),
            rx.callout("Denied: the terminal gets no key.", icon="circle_x", color_scheme="gray", id="device-result"),
        ),
        rx.link("Go to the dashboard", href=routes.HOME, size="2"),
        spacing="3", width="100%",
    )


def device_link_page() -> rx.Component:
    s = DeviceLinkState
    return rx.center(
        rx.cond(
            rx.State.is_hydrated & s.loaded,
            rx.vstack(
                rx.heading("Link a terminal", size="5"),
                rx.text("Signed in as ", s.user_email, size="1", color=styles.MUTED, id="device-user"),
                rx.cond(s.error != "", rx.callout(s.error, icon="circle_alert", color_scheme="red", size="1",
                                                  id="device-error", width="100%")),
                rx.match(s.step, ("ask", _ask()), ("approved", _done()), ("denied", _done()), _enter_code()),
                spacing="4", width="100%", max_width="460px", padding=styles.SPACE["xl"],
                background=styles.SURFACE, border=styles.BORDER, border_radius=styles.RADIUS,
            ),
            rx.spinner(size="3"),
        ),
        min_height="100vh", padding=styles.SPACE["lg"], background=styles.PAGE_BG,
    )

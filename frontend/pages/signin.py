"""Sign-in: the OIDC provider's button and, when enabled, "Continue as local developer".

Both are plain HTML navigation to the server's /auth routes (a link and a form post), not
Reflex events: the server sets the HttpOnly session cookie and redirects back to `next`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import reflex as rx

from frontend import routes, runtime, styles
from server.signin import safe_next

__all__ = ["SigninState", "native_form", "signin_page"]


def native_form(*children: rx.Component, **props: object) -> rx.Component:
    """A plain HTML form the browser submits itself (Reflex forms always preventDefault and
    turn submission into an event; the server's /auth routes need a real POST)."""
    form = rx.el.form(*children, **props)
    form.event_triggers.pop("on_submit", None)
    return form


class SigninState(rx.State):
    oidc_enabled: bool = False
    provider_name: str = ""
    local_enabled: bool = False
    next_path: str = "/"
    loaded: bool = False

    @rx.event
    async def load(self) -> Any:
        settings = runtime.settings()
        self.oidc_enabled = bool(settings.oidc_enabled)
        self.provider_name = settings.oidc_provider_name
        self.local_enabled = bool(settings.local_login_enabled)
        self.next_path = safe_next(self.router.url.query_parameters.get("next"))
        self.loaded = True
        if await runtime.signed_in_user(self.router) is not None:
            return rx.redirect(self.next_path)
        return None

    @rx.var
    def oidc_href(self) -> str:
        return f"{routes.AUTH_OIDC_LOGIN}?next={quote(self.next_path, safe='/')}"


def signin_page() -> rx.Component:
    s = SigninState
    return rx.center(
        rx.cond(
            rx.State.is_hydrated & s.loaded,
            rx.vstack(
                rx.heading("sentry-logger", size="6"),
                rx.text("Sign in to see your apps' logs.", color=styles.MUTED, size="2"),
                rx.cond(
                    s.oidc_enabled,
                    # A full document navigation (reload_document): /auth/oidc/login is a server
                    # route, which client-side routing would never reach.
                    rx.link(
                        rx.button(rx.icon("log_in", size=16), "Sign in with ", s.provider_name,
                                  size="3", width="100%", id="signin-oidc"),
                        href=s.oidc_href,
                        reload_document=True,
                        underline="none",
                        width="100%",
                    ),
                ),
                rx.cond(
                    s.local_enabled,
                    native_form(
                        rx.el.input(type="hidden", name="next", value=s.next_path),
                        rx.button("Continue as local developer", type="submit", size="3", width="100%",
                                  variant=rx.cond(s.oidc_enabled, "outline", "solid"), id="signin-local"),
                        method="post",
                        action=routes.AUTH_LOCAL,
                        style={"width": "100%"},
                    ),
                ),
                rx.cond(
                    ~s.oidc_enabled & ~s.local_enabled,
                    rx.callout("No sign-in method is configured on this server: set OIDC_CLIENT_ID "
                               "(see docs/configuration.md).", color_scheme="amber", size="1"),
                ),
                spacing="4",
                width="100%",
                max_width="360px",
                padding=styles.SPACE["xl"],
                background=styles.SURFACE,
                border=styles.BORDER,
                border_radius=styles.RADIUS,
                align="center",
            ),
            rx.spinner(size="3"),
        ),
        min_height="100vh",
        padding=styles.SPACE["lg"],
        background=styles.PAGE_BG,
    )

"""Home: send the user to their first app, or invite them to add one."""

from __future__ import annotations

from typing import Any

import reflex as rx

from frontend import routes, styles
from frontend.components.add_app import AddAppState
from frontend.components.layout import layout
from frontend.session import SessionState

__all__ = ["HomeState", "home_page"]


class HomeState(SessionState):
    @rx.event
    async def load(self) -> Any:
        if await self._load_session() is None:
            return self._to_signin()
        if self.apps:
            return rx.redirect(routes.app_logs(self.apps[0]["id"]))
        return None


def home_page() -> rx.Component:
    return layout(
        rx.center(
            rx.vstack(
                rx.heading("Welcome to sentry-logger", size="6"),
                rx.text("Register your first app to get an API key and start sending logs.",
                        color=styles.MUTED),
                rx.button(rx.icon("plus", size=14), "Add your first app", size="3", id="add-first-app",
                          on_click=AddAppState.set_form_open(True)),
                spacing="4",
                align="center",
                style=styles.card,
                max_width="520px",
            ),
            padding_top="10vh",
        )
    )

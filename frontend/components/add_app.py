"""The "Add App" dialog: name (required, unique, length-checked by `server.apps`), optional
description and environment, then the new key in the one-time dialog."""

from __future__ import annotations

from typing import Any

import reflex as rx

from frontend import routes, runtime
from frontend.components.one_time_key import OneTimeKeyState, reveal
from frontend.session import SessionState, SignedOut, readable
from server import apps
from server.errors import ApiError

__all__ = ["AddAppState", "add_app_dialog"]


class AddAppState(SessionState):
    form_open: bool = False
    name: str = ""
    description: str = ""
    environment: str = ""
    error_field: str = ""
    error: str = ""
    busy: bool = False

    @rx.event
    def set_form_open(self, value: bool) -> None:
        self.form_open = value
        self.error = self.error_field = ""
        if value:
            self.name = self.description = self.environment = ""

    @rx.event
    def set_name(self, value: str) -> None:
        self.name = value

    @rx.event
    def set_description(self, value: str) -> None:
        self.description = value

    @rx.event
    def set_environment(self, value: str) -> None:
        self.environment = value.strip().lower()

    @rx.event
    async def register(self) -> Any:
        self.error = self.error_field = ""
        try:
            user = await self._require_user()
        except SignedOut:
            yield self._to_signin()
            return
        try:
            app, key, key_row = await apps.create_app(
                runtime.resources()["db"], user, self.name, self.description or None, self.environment or None
            )
        except ApiError as exc:
            self.error, self.error_field = readable(exc), exc.field or ""
            return
        self.form_open = False
        await self._refresh_apps(user)
        shown = await self.get_state(OneTimeKeyState)
        shown.title = f"{app['name']} is registered"
        shown.environment = key_row["environment"]
        shown.dsn = runtime.settings().base_url
        shown.next_url = routes.app_logs(app["id"])
        shown.open = True
        yield
        yield reveal(key)


def _field(label: str, control: rx.Component, field: str) -> rx.Component:
    s = AddAppState
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        control,
        rx.cond(s.error_field == field, rx.text(s.error, color_scheme="red", size="1", id=f"error-{field}")),
        spacing="1",
        width="100%",
    )


def add_app_dialog() -> rx.Component:
    """The dialog (rendered once per page); buttons open it with `AddAppState.set_form_open(True)`."""
    s = AddAppState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Add an app"),
            rx.dialog.description("Each app gets its own API key and log stream.", size="2", margin_bottom="12px"),
            rx.vstack(
                _field("Name", rx.input(value=s.name, on_change=s.set_name, placeholder="checkout-service",
                                         max_length=64, id="app-name", width="100%"), "name"),
                _field("Description (optional)", rx.text_area(value=s.description, on_change=s.set_description,
                                                               max_length=500, id="app-description", width="100%"),
                       "description"),
                _field("Environment of the first key (optional)",
                       rx.input(value=s.environment, on_change=s.set_environment, placeholder="production",
                                max_length=32, id="app-environment", width="100%"), "environment"),
                rx.cond((s.error != "") & (s.error_field == ""), rx.callout(s.error, color_scheme="red", size="1")),
                rx.flex(
                    rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray")),
                    rx.button("Register App", on_click=s.register, id="register-app"),
                    spacing="3",
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                width="100%",
            ),
            max_width="480px",
        ),
        open=s.form_open,
        on_open_change=s.set_form_open,
    )

"""An app's Keys view: list, create for another environment, regenerate (new key shown
once, old key dead at once), revoke; rename and delete the app. Every action goes through
`server.apps`, which checks ownership."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import reflex as rx

from frontend import routes, runtime, styles
from frontend.components.one_time_key import OneTimeKeyState, reveal
from frontend.session import SessionState, SignedOut, readable
from server import apps
from server.accounts import User
from server.errors import ApiError

__all__ = ["KeysState", "keys_page"]


def _when(ts: Any) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class KeysState(SessionState):
    app_id: str = ""
    app_name: str = ""
    loaded: bool = False
    keys: list[dict[str, str]] = rx.field(default_factory=list)
    new_environment: str = ""
    create_error: str = ""
    # One confirmation dialog for regenerate / revoke / delete app.
    confirm_action: str = ""
    confirm_key_id: str = ""
    confirm_text: str = ""
    rename_open: bool = False
    rename_value: str = ""
    rename_error: str = ""

    async def _user_and_app(self) -> tuple[User, dict[str, Any]]:
        user = await self._require_user()
        app = await apps.get_app(runtime.resources()["db"], user, self.app_id)
        return user, app

    async def _reload_keys(self, user: User) -> None:
        rows = await apps.list_keys(runtime.resources()["db"], user, self.app_id)
        self.keys = [
            {"id": str(r["id"]), "environment": r["environment"], "prefix": r["prefix"] + "...",
             "created": _when(r["created_at"]), "last_used": _when(r["last_used_at"])}
            for r in rows
        ]

    @rx.event
    async def load(self) -> Any:
        self.loaded = False
        self.confirm_action = ""
        self.rename_open = False
        user = await self._load_session()
        if user is None:
            return self._to_signin()
        if not await self._open_app_of_url(user):
            return None
        await self._reload_keys(user)
        self.loaded = True
        return None

    async def _show_key(self, title: str, key: str, environment: str) -> Any:
        shown = await self.get_state(OneTimeKeyState)
        shown.title, shown.environment, shown.dsn, shown.next_url = title, environment, self.dsn, ""
        shown.open = True
        return reveal(key)

    @rx.event
    def set_new_environment(self, value: str) -> None:
        self.new_environment = value.strip().lower()

    @rx.event
    async def create_key(self, _form: dict[str, Any] | None = None) -> Any:
        self.create_error = ""
        try:
            user, _ = await self._user_and_app()
            key, row = await apps.create_key(runtime.resources()["db"], user, self.app_id, self.new_environment)
        except SignedOut:
            yield self._to_signin()
            return
        except ApiError as exc:
            self.create_error = readable(exc)
            return
        self.new_environment = ""
        await self._reload_keys(user)
        spec = await self._show_key(f"New key for {row['environment']}", key, row["environment"])
        yield
        yield spec

    @rx.event
    def ask(self, action: str, key_id: str = "") -> None:
        self.confirm_action, self.confirm_key_id, self.confirm_text = action, key_id, ""

    @rx.event
    def set_confirm_text(self, value: str) -> None:
        self.confirm_text = value

    @rx.event
    def cancel(self, _open: bool = False) -> None:
        self.confirm_action = self.confirm_key_id = ""

    @rx.event
    async def confirm(self) -> Any:
        action, key_id = self.confirm_action, self.confirm_key_id
        self.confirm_action = self.confirm_key_id = ""
        db = runtime.resources()["db"]
        try:
            user, app = await self._user_and_app()
            if action == "regenerate":
                key, row = await apps.regenerate_key(db, user, self.app_id, key_id)
                await self._reload_keys(user)
                spec = await self._show_key(f"Regenerated key for {row['environment']}", key, row["environment"])
                yield
                yield spec
                return
            if action == "revoke":
                await apps.revoke_key(db, user, self.app_id, key_id)
                await self._reload_keys(user)
                return
            if action == "delete":
                if self.confirm_text != app["name"]:
                    self.page_error = "Type the app's name exactly to delete it."
                    return
                await apps.delete_app(db, user, self.app_id)
                await self._refresh_apps(user)
                yield rx.redirect(routes.HOME)
                return
        except SignedOut:
            yield self._to_signin()
        except ApiError as exc:
            self.page_error = readable(exc)

    @rx.event
    def open_rename(self) -> None:
        self.rename_open, self.rename_value, self.rename_error = True, self.app_name, ""

    @rx.event
    def set_rename_open(self, value: bool) -> None:
        self.rename_open = value

    @rx.event
    def set_rename_value(self, value: str) -> None:
        self.rename_value = value

    @rx.event
    async def rename(self, _form: dict[str, Any] | None = None) -> Any:
        self.rename_error = ""
        try:
            user, _ = await self._user_and_app()
            app = await apps.update_app(runtime.resources()["db"], user, self.app_id, {"name": self.rename_value})
        except SignedOut:
            return self._to_signin()
        except ApiError as exc:
            self.rename_error = readable(exc)
            return None
        self.app_name = app["name"]
        self.rename_open = False
        await self._refresh_apps(user)
        return None


def _key_row(key: rx.Var) -> rx.Component:
    s = KeysState
    return rx.table.row(
        rx.table.cell(rx.code(key["prefix"])),
        rx.table.cell(rx.badge(key["environment"], variant="soft")),
        rx.table.cell(key["created"]),
        rx.table.cell(key["last_used"]),
        rx.table.cell(
            rx.hstack(
                rx.button("Regenerate", size="1", variant="soft", on_click=s.ask("regenerate", key["id"]),
                          class_name="key-regenerate"),
                rx.button("Revoke", size="1", variant="soft", color_scheme="red", on_click=s.ask("revoke", key["id"]),
                          class_name="key-revoke"),
                spacing="2",
            )
        ),
        class_name="key-row",
    )


def _confirm_dialog() -> rx.Component:
    s = KeysState
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(rx.match(s.confirm_action, ("regenerate", "Regenerate this key?"),
                                           ("revoke", "Revoke this key?"), "Delete this app?")),
            rx.alert_dialog.description(
                rx.match(
                    s.confirm_action,
                    ("regenerate", ("A new key replaces it. The old key stops working immediately: "
                                    "apps still using it get 401 until you deploy the new one.")),
                    ("revoke", "The key stops working immediately: apps using it get 401."),
                    (
                        "The app, all its keys and all its logs are deleted. This cannot be undone. "
                        "Type the app's name to confirm."
                    ),
                ),
                size="2",
            ),
            rx.cond(s.confirm_action == "delete",
                    rx.input(value=s.confirm_text, on_change=s.set_confirm_text, placeholder=s.app_name,
                             id="confirm-name", margin_top="12px")),
            rx.flex(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.button(
                    rx.match(s.confirm_action, ("regenerate", "Regenerate"), ("revoke", "Revoke"), "Delete app"),
                    color_scheme=rx.cond(s.confirm_action == "regenerate", styles.ACCENT, "red"),
                    on_click=s.confirm,
                    disabled=(s.confirm_action == "delete") & (s.confirm_text != s.app_name),
                    id="confirm-action",
                ),
                spacing="3",
                justify="end",
                margin_top="16px",
            ),
        ),
        open=s.confirm_action != "",
        on_open_change=s.cancel,
    )


def _rename_dialog() -> rx.Component:
    s = KeysState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Rename app"),
            rx.form(
                rx.vstack(
                    rx.input(value=s.rename_value, on_change=s.set_rename_value, max_length=64, id="rename-input", name="rename-input",
                             width="100%"),
                    rx.cond(s.rename_error != "", rx.text(s.rename_error, color_scheme="red", size="1")),
                    rx.flex(
                        rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", type="button")),
                        rx.button("Save", type="submit", id="rename-save"),
                        spacing="3",
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                ),
                on_submit=s.rename,
            ),
            max_width="420px",
        ),
        open=s.rename_open,
        on_open_change=s.set_rename_open,
    )


def keys_page() -> rx.Component:
    from frontend.components.app_header import app_header
    from frontend.components.layout import layout

    s = KeysState
    actions = (
        rx.button(rx.icon("pencil", size=14), "Rename", variant="soft", on_click=s.open_rename, id="rename-app"),
        rx.button(rx.icon("trash_2", size=14), "Delete app", variant="soft", color_scheme="red",
                  on_click=s.ask("delete", ""), id="delete-app"),
    )
    return layout(
        rx.cond(
            s.loaded & (s.app_id != ""),
            rx.vstack(
                app_header(s.app_id, s.app_name, "keys", *actions),
                rx.box(
                    rx.table.root(
                        rx.table.header(rx.table.row(
                            rx.table.column_header_cell("Key"), rx.table.column_header_cell("Environment"),
                            rx.table.column_header_cell("Created"), rx.table.column_header_cell("Last used"),
                            rx.table.column_header_cell(""),
                        )),
                        rx.table.body(rx.foreach(s.keys, _key_row)),
                        width="100%",
                    ),
                    overflow_x="auto",
                    width="100%",
                    style=styles.card,
                    id="keys-table",
                ),
                rx.form(
                    rx.flex(
                        rx.input(value=s.new_environment, on_change=s.set_new_environment,
                                 placeholder="environment, e.g. staging", max_length=32, id="new-key-environment", name="new-key-environment"),
                        rx.button(rx.icon("key_round", size=14), "Create key", type="submit", id="create-key"),
                        spacing="2",
                        wrap="wrap",
                    ),
                    on_submit=s.create_key,
                ),
                rx.cond(s.create_error != "", rx.text(s.create_error, color_scheme="red", size="1",
                                                      id="create-key-error")),
                rx.text("Keys are shown once, when created. Only their prefix is stored in readable form.",
                        size="1", color=styles.MUTED),
                _confirm_dialog(),
                _rename_dialog(),
                spacing="4",
                width="100%",
            ),
            rx.cond(s.loaded, rx.fragment(), rx.center(rx.spinner(size="3"), height="40vh")),
        )
    )

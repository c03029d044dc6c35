"""The signed-in frame: sidebar of apps with health dots, Add App, user menu, and the
connection notice. Pages render their content inside `layout(...)`."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.core.banner import has_connection_errors

from frontend import styles
from frontend.components.add_app import AddAppState, add_app_dialog
from frontend.components.one_time_key import one_time_key_dialog
from frontend.session import SessionState

__all__ = ["connection_notice", "layout", "loading"]


def health_dot(health: rx.Var) -> rx.Component:
    return rx.box(
        width="9px",
        height="9px",
        border_radius="50%",
        flex_shrink="0",
        background=rx.match(
            health,
            ("ok", styles.HEALTH_COLORS["ok"]),
            ("errors", styles.HEALTH_COLORS["errors"]),
            styles.HEALTH_COLORS["silent"],
        ),
        title=rx.match(
            health,
            ("ok", "Healthy (see the Health view)"),
            ("errors", "Degraded or failing (see the Health view)"),
            "Silent: no logs lately",
        ),
        class_name="health-dot",
        data_health=health,
    )


def _app_link(app: rx.Var) -> rx.Component:
    return rx.link(
        rx.hstack(
            health_dot(app["health"]),
            rx.text(app["name"], size="2", truncate=True),
            align="center",
            spacing="2",
            width="100%",
        ),
        href="/apps/" + app["id"].to(str) + "/logs",
        underline="none",
        color_scheme="gray",
        high_contrast=True,
        padding=f"{styles.SPACE['sm']} {styles.SPACE['md']}",
        border_radius=styles.RADIUS,
        width="100%",
        _hover={"background": "var(--gray-4)"},
        class_name=rx.cond(
            rx.State.router.url.path.startswith("/apps/" + app["id"].to(str) + "/"), "sidebar-app active", "sidebar-app"
        ),
    )


def user_menu() -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(
            rx.button(
                rx.icon("circle_user", size=16),
                rx.text(SessionState.user_name, truncate=True, max_width="150px"),
                variant="ghost",
                color_scheme="gray",
                id="user-menu",
            )
        ),
        rx.menu.content(
            rx.menu.item(SessionState.user_email, disabled=True),
            rx.menu.separator(),
            rx.menu.item("Sign out", on_click=SessionState.sign_out, color_scheme="red", id="sign-out"),
        ),
    )


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.link(rx.heading("sentry-logger", size="4"), href="/", underline="none", high_contrast=True),
            justify="between",
            width="100%",
            align="center",
        ),
        rx.button(rx.icon("plus", size=14), "Add App", width="100%", id="add-app",
                  on_click=AddAppState.set_form_open(True)),
        rx.text("Apps", size="1", color=styles.MUTED, weight="medium", padding_top=styles.SPACE["sm"]),
        rx.vstack(rx.foreach(SessionState.apps, _app_link), spacing="1", width="100%", id="app-list"),
        rx.cond(
            SessionState.apps.length() == 0,
            rx.text("No apps yet.", size="2", color=styles.MUTED),
        ),
        rx.spacer(),
        user_menu(),
        width=["100%", "100%", styles.SIDEBAR_WIDTH],
        min_width=["auto", "auto", styles.SIDEBAR_WIDTH],
        height=["auto", "auto", "100vh"],
        position=["static", "static", "sticky"],
        top="0",
        padding=styles.SPACE["lg"],
        background=styles.SURFACE,
        border_right=["none", "none", styles.BORDER],
        border_bottom=[styles.BORDER, styles.BORDER, "none"],
        spacing="2",
        align="start",
    )


def connection_notice() -> rx.Component:
    """Reflex reconnects on its own; say so while it does."""
    return rx.cond(
        has_connection_errors,
        rx.callout(
            "Connection to the server lost: reconnecting...",
            icon="wifi_off",
            color_scheme="amber",
            size="1",
            position="fixed",
            bottom="16px",
            right="16px",
            z_index="1000",
            id="connection-lost",
        ),
    )


def loading() -> rx.Component:
    return rx.center(rx.spinner(size="3"), width="100%", height="60vh")


def layout(*content: rx.Component) -> rx.Component:
    """The frame around a signed-in page; nothing user-specific renders before hydration."""
    return rx.box(
        rx.cond(
            rx.State.is_hydrated & SessionState.signed_in,
            rx.flex(
                sidebar(),
                rx.box(
                    rx.cond(
                        SessionState.page_error != "",
                        rx.callout(SessionState.page_error, icon="circle_alert", color_scheme="red",
                                   margin_bottom=styles.SPACE["lg"], id="page-error"),
                    ),
                    *content,
                    flex="1",
                    min_width="0",
                    padding=[styles.SPACE["md"], styles.SPACE["lg"], styles.SPACE["xl"]],
                ),
                direction=rx.breakpoints(initial="column", md="row"),
                width="100%",
                min_height="100vh",
            ),
            loading(),
        ),
        add_app_dialog(),
        one_time_key_dialog(),
        connection_notice(),
        background=styles.PAGE_BG,
        min_height="100vh",
    )

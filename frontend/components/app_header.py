"""The app page header: name and the Logs / Keys tabs."""

from __future__ import annotations

import reflex as rx

from frontend import styles

__all__ = ["app_header"]


def _tab(label: str, href: rx.Var, active: bool) -> rx.Component:
    return rx.link(
        label,
        href=href,
        underline="none",
        weight="medium",
        size="2",
        color_scheme=styles.ACCENT if active else "gray",
        padding_bottom="6px",
        border_bottom=f"2px solid {'var(--accent-9)' if active else 'transparent'}",
        id=f"tab-{label.lower()}",
    )


def app_header(app_id: rx.Var, app_name: rx.Var, active: str, *actions: rx.Component) -> rx.Component:
    return rx.vstack(
        rx.flex(
            rx.heading(app_name, size="6", id="app-title"),
            rx.spacer(),
            *actions,
            align="center",
            width="100%",
            gap=styles.SPACE["sm"],
            wrap="wrap",
        ),
        rx.hstack(
            _tab("Logs", "/apps/" + app_id + "/logs", active == "logs"),
            _tab("Health", "/apps/" + app_id + "/health", active == "health"),
            _tab("Keys", "/apps/" + app_id + "/keys", active == "keys"),
            spacing="5",
            border_bottom=styles.BORDER,
            width="100%",
        ),
        spacing="3",
        width="100%",
        margin_bottom=styles.SPACE["lg"],
    )

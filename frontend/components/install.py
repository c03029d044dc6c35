"""Install instructions with this server's real DSN: pip, the init() snippet, the .env lines."""

from __future__ import annotations

import reflex as rx

from frontend import styles

__all__ = ["code_block", "install_steps", "secret_slot"]


def secret_slot(placeholder: rx.Var | str = "") -> rx.Component:
    """Where the one-time API key appears. It is filled by a script, never from state, so
    the key is not stored in (persisted) Reflex state; see `one_time_key.reveal`."""
    return rx.el.span(placeholder, data_sl_secret="1")


def code_block(*children: rx.Component | str | rx.Var) -> rx.Component:
    return rx.el.pre(
        *children,
        style={
            **styles.mono,
            "background": "var(--gray-3)",
            "border": styles.BORDER,
            "border_radius": styles.RADIUS,
            "padding": styles.SPACE["md"],
            "margin": "0",
            "white_space": "pre-wrap",
            "word_break": "break-all",
            "width": "100%",
        },
    )


def install_steps(dsn: rx.Var | str, with_key: bool) -> rx.Component:
    """The three steps. With `with_key`, the .env line holds the one-time key (filled in by
    script); without, it says where the key comes from."""
    key: rx.Component | str = secret_slot() if with_key else "sk_<environment>_... (from the Keys tab)"
    return rx.vstack(
        rx.text("1. Install the SDK", weight="medium", size="2"),
        code_block("pip install sentry-logger"),
        rx.text("2. Put the DSN and key in your app's environment (.env)", weight="medium", size="2"),
        code_block("SENTRY_DSN=", dsn, "\nSENTRY_API_KEY=", key),
        rx.text("3. Initialise it once at start-up; your logging calls are shipped", weight="medium", size="2"),
        code_block(
            "import logging\nimport sentry_logger\n\n"
            "sentry_logger.init()  # reads SENTRY_DSN and SENTRY_API_KEY\n"
            'logging.getLogger(__name__).warning("hello from my app")'
        ),
        spacing="2",
        width="100%",
        align="start",
    )

"""The dialog that shows a new API key exactly once.

The key never enters Reflex state (which is persisted to disk or Redis): the handler that
created it sends it to this tab in a one-off script (`reveal`) that writes it into the
open dialog's DOM. Closing the dialog removes those nodes; a reload, the back button or
another tab have nothing to show.
"""

from __future__ import annotations

import json

import reflex as rx

from frontend import styles
from frontend.components.install import install_steps

__all__ = ["HEAD_SCRIPT", "OneTimeKeyState", "one_time_key_dialog", "reveal"]

KEY_INPUT_ID = "sl-one-time-key"

# Fill every [data-sl-secret] node once the dialog has rendered (it may not have yet when
# the script arrives right after the state update that opens it).
HEAD_SCRIPT = """
window.slReveal = function (key) {
  var tries = 0;
  (function fill() {
    var nodes = document.querySelectorAll('[data-sl-secret]');
    if (!nodes.length && tries++ < 100) { setTimeout(fill, 30); return; }
    nodes.forEach(function (n) { if (n.tagName === 'INPUT') { n.value = key; } else { n.textContent = key; } });
  })();
};
window.slCopySecret = function () {
  var input = document.getElementById('KEY_INPUT_ID');
  if (!input || !input.value) { return; }
  input.select();
  if (navigator.clipboard) { navigator.clipboard.writeText(input.value); } else { document.execCommand('copy'); }
};
""".replace("KEY_INPUT_ID", KEY_INPUT_ID)


def reveal(key: str) -> rx.event.EventSpec:
    return rx.call_script(f"window.slReveal({json.dumps(key)})")


class OneTimeKeyState(rx.State):
    open: bool = False
    title: str = ""
    environment: str = ""
    dsn: str = ""
    copied: bool = False
    # Where to go once the key is stored (e.g. the new app's page); navigating earlier
    # would unmount the dialog and with it the key.
    next_url: str = ""

    @rx.event
    def close(self) -> rx.event.EventSpec | None:
        self.open = False
        self.copied = False
        next_url, self.next_url = self.next_url, ""
        return rx.redirect(next_url) if next_url else None

    @rx.event
    def set_open(self, value: bool) -> rx.event.EventSpec | None:
        return None if value else self.close()

    @rx.event
    def copy(self) -> rx.event.EventSpec:
        self.copied = True
        return rx.call_script("window.slCopySecret()")


def one_time_key_dialog() -> rx.Component:
    s = OneTimeKeyState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(s.title),
            rx.callout(
                "Copy this key now: you will not see it again. If you lose it, regenerate it in the Keys tab.",
                icon="triangle_alert",
                color_scheme="amber",
                size="1",
                margin_bottom=styles.SPACE["md"],
            ),
            rx.text("API key (", s.environment, ")", size="2", weight="medium"),
            rx.hstack(
                rx.el.input(
                    id=KEY_INPUT_ID,
                    read_only=True,
                    data_sl_secret="1",
                    aria_label="API key",
                    style={**styles.mono, "flex": "1", "padding": "8px", "border": styles.BORDER,
                           "border_radius": styles.RADIUS, "background": "var(--gray-2)", "min_width": "0"},
                ),
                rx.button(
                    rx.cond(s.copied, rx.icon("check", size=14), rx.icon("copy", size=14)),
                    rx.cond(s.copied, "Copied", "Copy"),
                    on_click=s.copy,
                    id="copy-key",
                ),
                width="100%",
                margin_bottom=styles.SPACE["lg"],
            ),
            install_steps(s.dsn, with_key=True),
            rx.flex(
                rx.button("I have stored the key", on_click=s.close, id="close-key-dialog"),
                justify="end",
                margin_top=styles.SPACE["lg"],
            ),
            max_width="640px",
        ),
        open=s.open,
        on_open_change=s.set_open,
    )

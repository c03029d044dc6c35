"""The Logs view's widgets: filter bar, live controls, the rows and the empty state."""

from __future__ import annotations

import reflex as rx

from frontend import styles
from frontend.components.install import code_block, install_steps
from frontend.logfmt import LEVEL_CHOICES, RANGE_CHOICES
from frontend.pages.logs import LogsState

__all__ = ["empty_state", "filter_bar", "live_bar", "log_list"]


def _select(choices: dict[str, str], value: rx.Var, on_change: rx.EventHandler, id_: str) -> rx.Component:
    # Radix selects cannot hold "" as an item value: "all" stands for no level filter.
    return rx.select.root(
        rx.select.trigger(id=id_, min_width="150px"),
        rx.select.content(*[rx.select.item(label, value=key or "all") for key, label in choices.items()]),
        value=value,
        on_change=on_change,
    )


def filter_bar() -> rx.Component:
    s = LogsState
    return rx.vstack(
        rx.form(
            rx.flex(
                rx.input(rx.input.slot(rx.icon("search", size=14)), placeholder="Search messages",
                         value=s.q_input, on_change=s.set_q_input, id="filter-q", name="filter-q", flex="2", min_width="180px"),
                rx.input(placeholder="service", value=s.service_input, on_change=s.set_service_input,
                         id="filter-service", name="filter-service", flex="1", min_width="110px"),
                rx.input(placeholder="environment", value=s.environment_input, on_change=s.set_environment_input,
                         id="filter-environment", name="filter-environment", flex="1", min_width="110px"),
                rx.button("Apply", type="submit", variant="soft", id="filter-apply"),
                spacing="2",
                wrap="wrap",
                width="100%",
            ),
            on_submit=s.apply_text_filters,
            width="100%",
        ),
        rx.flex(
            _select(LEVEL_CHOICES, rx.cond(s.level == "", "all", s.level), s.set_level, "filter-level"),
            _select(RANGE_CHOICES, s.time_range, s.set_time_range, "filter-range"),
            rx.cond(
                s.time_range == "custom",
                rx.form(
                    rx.flex(
                        rx.text("From", size="2"),
                        rx.input(type="datetime-local", name="since", default_value=s.since, id="filter-since"),
                        rx.text("to", size="2"),
                        rx.input(type="datetime-local", name="until", default_value=s.until, id="filter-until"),
                        rx.text("UTC", size="1", color=styles.MUTED),
                        rx.button("Apply range", type="submit", variant="soft", id="filter-range-apply"),
                        spacing="2",
                        align="center",
                        wrap="wrap",
                    ),
                    on_submit=s.set_custom_range,
                ),
            ),
            rx.button("Clear filters", variant="ghost", color_scheme="gray", on_click=s.clear_filters),
            spacing="2",
            align="center",
            wrap="wrap",
            width="100%",
        ),
        rx.cond(s.filter_error != "", rx.callout(s.filter_error, color_scheme="red", size="1", id="filter-error")),
        spacing="2",
        width="100%",
    )


def live_bar() -> rx.Component:
    s = LogsState
    return rx.flex(
        rx.cond(
            s.live_note != "",
            rx.text(s.live_note, size="2", color=styles.MUTED, id="live-note"),
            rx.cond(
                s.paused,
                rx.hstack(
                    rx.badge("Paused", color_scheme="gray", id="live-status"),
                    rx.button(rx.icon("play", size=14), "Resume",
                              rx.cond(s.new_count > 0, rx.badge(s.new_count.to_string() + " new lines",
                                                                color_scheme="indigo", id="new-count")),
                              on_click=s.resume, size="1", id="live-resume"),
                    align="center",
                ),
                rx.hstack(
                    rx.badge(rx.box(width="7px", height="7px", border_radius="50%", background="var(--green-9)"),
                             "Live", color_scheme="green", id="live-status"),
                    rx.button(rx.icon("pause", size=14), "Pause", on_click=s.pause, size="1", variant="soft",
                              id="live-pause"),
                    align="center",
                ),
            ),
        ),
        rx.spacer(),
        rx.text(s.rows.length().to_string() + " lines shown · times in UTC", size="1", color=styles.MUTED,
                id="row-count"),
        align="center",
        width="100%",
        gap=styles.SPACE["sm"],
    )


def _detail() -> rx.Component:
    d = LogsState.detail
    return rx.vstack(
        code_block(d["message"]),
        rx.cond(d["exception"] != "", rx.vstack(rx.text("Traceback", size="1", weight="medium"),
                                              code_block(d["exception"]), width="100%", spacing="1")),
        rx.cond(d["attributes"] != "", rx.vstack(rx.text("Attributes", size="1", weight="medium"),
                                               code_block(d["attributes"]), width="100%", spacing="1")),
        rx.text(d["context"], size="1", color=styles.MUTED, white_space="pre-wrap", style=styles.mono),
        width="100%",
        spacing="2",
        padding=f"{styles.SPACE['sm']} {styles.SPACE['md']} {styles.SPACE['md']}",
        class_name="log-detail",
    )


def _row(row: rx.Var) -> rx.Component:
    """One line. Plain elements styled by assets/dashboard.css: hundreds of these re-render
    per live batch, and CSS-in-JS per element would dominate that."""
    expanded = LogsState.expanded_id == row["id"]
    return rx.el.div(
        rx.el.div(
            rx.el.span(row["time"], class_name="log-time"),
            rx.el.span(row["level"], class_name="log-level lvl-" + row["level"]),
            rx.el.span(row["service"], class_name="log-service"),
            rx.el.span(row["message"], class_name="log-message"),
            rx.cond(row["has_exception"] != "", rx.el.span("exception", class_name="log-exception")),
            class_name="log-line",
            on_click=LogsState.toggle_row(row["id"]),
        ),
        rx.cond(expanded, _detail()),
        # Keyed by log id, so a batch of new lines mounts only those rows instead of
        # rewriting every row below them.
        key=row["id"],
        class_name=rx.cond(expanded, "log-row expanded", "log-row"),
        data_log_id=row["id"],
        data_level=row["level"],
    )


def log_list() -> rx.Component:
    s = LogsState
    return rx.box(
        rx.cond(
            s.rows.length() > 0,
            rx.box(rx.foreach(s.rows, _row), id="log-rows"),
            rx.center(rx.text("No logs match these filters in this time range.", color=styles.MUTED),
                      padding=styles.SPACE["xxl"], id="no-matches"),
        ),
        rx.cond(
            s.older_cursor != "",
            rx.center(rx.button("Load older", variant="soft", on_click=s.load_older, id="load-older"),
                      padding=styles.SPACE["md"]),
        ),
        style={**styles.card, "padding": "0"},
        overflow="hidden",
    )


def empty_state() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.spinner(size="2"), rx.text("Waiting for the first log...", weight="medium", id="waiting"),
                  align="center"),
        rx.text("This app has no logs yet. Send one with the SDK: the view turns live when it arrives.",
                color=styles.MUTED, size="2"),
        install_steps(LogsState.dsn, with_key=False),
        style=styles.card,
        spacing="3",
        align="start",
    )

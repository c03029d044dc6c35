"""The Health view's widgets: range picker, service cards, charts, top errors."""

from __future__ import annotations

import reflex as rx
from reflex.vars.function import FunctionStringVar

from frontend import styles
from frontend.healthfmt import LEVELS, RANGES

__all__ = ["charts", "range_picker", "service_cards", "top_errors"]


def _open_point(extra: str = "") -> FunctionStringVar:
    """A Recharts click handler opening the clicked point's `logs_url` (plus `extra` query)."""
    return FunctionStringVar.create(
        "(d) => { const p = d && (d.payload || (d.activePayload && d.activePayload.length && d.activePayload[0].payload));"
        f" if (p && p.logs_url) {{ window.location.assign(p.logs_url + {extra!r}); }} }}"
    )


def range_picker() -> rx.Component:
    from frontend.pages.health import HealthState

    return rx.select.root(
        rx.select.trigger(id="health-range"),
        rx.select.content(*(rx.select.item(label, value=key) for key, label in RANGES.items())),
        value=HealthState.time_range,
        on_change=HealthState.set_time_range,
        size="2",
    )


def _status_badge(status: rx.Var) -> rx.Component:
    return rx.badge(status, color_scheme=rx.match(status, *styles.STATUS_SCHEMES.items(), "gray"),
                    variant="soft", class_name="health-status")


def _figure(label: str, value: rx.Var | str, *extra: rx.Component) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=styles.MUTED),
        rx.hstack(rx.text(value, size="3", weight="medium"), *extra, spacing="1", align="center"),
        spacing="0",
    )


def _card(card: rx.Var) -> rx.Component:
    from frontend.pages.health import HealthState

    return rx.link(
        rx.vstack(
            rx.hstack(rx.text(card["service"], weight="bold", size="3"), rx.spacer(), _status_badge(card["status"]),
                      width="100%", align="center"),
            rx.grid(
                _figure("Error rate (" + HealthState.window_minutes.to_string() + " min)", card["error_rate"],
                        rx.text(card["trend_arrow"], class_name="health-trend", data_trend=card["trend"],
                                title="Previous window: " + card["previous_error_rate"],
                                color=rx.match(card["trend"], ("up", "var(--red-10)"), ("down", "var(--green-10)"),
                                               styles.MUTED))),
                _figure("Volume", card["volume"]),
                _figure("p95 latency", card["p95"]),
                _figure("Last seen", card["last_seen"]),
                columns="2",
                spacing="3",
                width="100%",
            ),
            rx.cond(card["reasons"] != "", rx.text(card["reasons"], size="1", color=styles.MUTED)),
            spacing="3",
            style=styles.card,
            class_name="health-card",
            data_service=card["service"],
            data_status=card["status"],
            border_left=rx.match(card["status"], *((k, f"4px solid {v}") for k, v in styles.STATUS_COLORS.items()),
                                 styles.BORDER),
        ),
        href=card["logs_url"],
        underline="none",
        color="inherit",
    )


def service_cards() -> rx.Component:
    from frontend.pages.health import HealthState

    return rx.cond(
        HealthState.cards.length() > 0,  # type: ignore[attr-defined]
        rx.grid(rx.foreach(HealthState.cards, _card), columns=rx.breakpoints(initial="1", sm="2", lg="3"),
                spacing="3", width="100%", id="health-cards"),
        rx.text("No logs yet: the cards appear when this app's services send logs.", color=styles.MUTED,
                id="health-empty"),
    )


def _chart_box(title: str, chart_id: str, chart: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(title, weight="medium", size="2"), chart, style=styles.card, id=chart_id, spacing="2")


def charts() -> rx.Component:
    from frontend.pages.health import HealthState

    axes = (rx.recharts.x_axis(data_key="label", font_size=11), rx.recharts.y_axis(font_size=11, width=50),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False), rx.recharts.graphing_tooltip())
    volume = rx.recharts.bar_chart(
        *(rx.recharts.bar(data_key=level, stack_id="levels", fill=f"var(--{styles.LEVEL_COLORS[level]}-9)",
                          on_click=_open_point(f"&level={level}"), cursor="pointer") for level in LEVELS),
        *axes, rx.recharts.legend(), data=HealthState.volume, height=240,
    )
    error_rate = rx.recharts.line_chart(
        rx.recharts.line(data_key="error_rate", name="error rate %", stroke="var(--red-9)", dot=True,
                         connect_nulls=True, type_="monotone"),
        *axes, data=HealthState.volume, height=200, on_click=_open_point("&level=ERROR"), cursor="pointer",
    )
    latency = rx.recharts.line_chart(
        rx.recharts.line(data_key="p50", name="p50 ms", stroke="var(--blue-9)", dot=True, connect_nulls=True),
        rx.recharts.line(data_key="p95", name="p95 ms", stroke="var(--amber-9)", dot=True, connect_nulls=True),
        *axes, rx.recharts.legend(), data=HealthState.latency, height=200, on_click=_open_point(), cursor="pointer",
    )
    picker = rx.select(HealthState.latency_services, value=HealthState.latency_service,
                       on_change=HealthState.set_latency_service, size="1", id="latency-service")
    return rx.vstack(
        _chart_box("Volume by level", "chart-volume", volume),
        rx.grid(
            _chart_box("Error rate (ERROR + CRITICAL / all), %", "chart-error-rate", error_rate),
            rx.vstack(
                rx.hstack(rx.text("Request latency", weight="medium", size="2"), rx.spacer(),
                          rx.cond(HealthState.latency_services.length() > 0, picker),  # type: ignore[attr-defined]
                          width="100%", align="center"),
                rx.cond(HealthState.latency.length() > 0, latency,  # type: ignore[attr-defined]
                        rx.text("No request durations in this range (the SDK's request middleware sends them).",
                                size="2", color=styles.MUTED)),
                style=styles.card, id="chart-latency", spacing="2",
            ),
            columns=rx.breakpoints(initial="1", lg="2"), spacing="3", width="100%",
        ),
        rx.text("Updated " + HealthState.updated + " UTC · click a card or a point for its logs", size="1",
                color=styles.MUTED, id="health-updated"),
        width="100%",
        spacing="3",
    )


def top_errors() -> rx.Component:
    from frontend.pages.health import HealthState

    row = lambda e: rx.table.row(
        rx.table.cell(e["count"]), rx.table.cell(e["service"]), rx.table.cell(rx.text(e["message"], style=styles.mono)),
        rx.table.cell(e["last_seen"]),
    )
    return rx.cond(
        HealthState.top_errors.length() > 0,  # type: ignore[attr-defined]
        rx.vstack(
            rx.text("Top errors (" + HealthState.window_minutes.to_string() + " min)", weight="medium", size="2"),
            rx.table.root(
                rx.table.header(rx.table.row(*(rx.table.column_header_cell(h) for h in
                                               ("Count", "Service", "Message", "Last (UTC)")))),
                rx.table.body(rx.foreach(HealthState.top_errors, row)),
                size="1", width="100%",
            ),
            style=styles.card, id="top-errors", spacing="2",
        ),
    )

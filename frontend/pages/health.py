"""An app's Health view: a card per service and charts, refreshed live.

Everything comes from the health aggregates through the same functions the health API
uses (`server.health_series`, `server.health_status`), after the same ownership check.
The time range is the logs view's presets, kept in the URL (`?range=`); a background task
reloads the figures every REFRESH_SECONDS while the tab shows the page. Cards and chart
points link to the logs view filtered to that service, level and time.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import reflex as rx

from frontend import routes, runtime
from frontend.healthfmt import BUCKET_FOR_RANGE, RANGES, card_of, latency_rows, volume_rows
from frontend.session import SessionState, SignedOut, readable
from server import apps
from server.errors import ApiError
from server.health_range import parse_range
from server.health_rollup import ALL_ROUTES
from server.health_series import error_rate_series, latency_series, list_services, volume_series
from server.health_status import summary

__all__ = ["REFRESH_SECONDS", "HealthState", "health_page"]

REFRESH_SECONDS = 5.0
DISCONNECTED_GRACE_SECONDS = 60.0


class HealthState(SessionState):
    app_id: str = ""
    app_name: str = ""
    loaded: bool = False
    time_range: str = "24h"
    status: str = ""
    window_minutes: int = 15
    cards: list[dict[str, str]] = rx.field(default_factory=list)
    volume: list[dict[str, Any]] = rx.field(default_factory=list)
    latency: list[dict[str, Any]] = rx.field(default_factory=list)
    latency_services: list[str] = rx.field(default_factory=list)
    latency_service: str = ""
    top_errors: list[dict[str, str]] = rx.field(default_factory=list)
    updated: str = ""
    refresh_gen: int = 0

    @rx.event
    async def load(self) -> Any:
        """on_load: the user, the app (ownership-checked), the range from the URL, the figures, live refresh."""
        self.refresh_gen += 1
        self.loaded = False
        user = await self._load_session()
        if user is None:
            return self._to_signin()
        wanted = self.router.url.query_parameters.get("range", "24h")
        self.time_range = wanted if wanted in RANGES else "24h"
        if not await self._open_app_of_url(user):
            return None
        await self._load_figures()
        self.loaded = True
        return HealthState.refresh

    async def _load_figures(self) -> None:
        resources, settings = runtime.resources(), runtime.settings()
        reader, app_id = await resources["health_reader"].fresh(), int(self.app_id)
        try:
            rng = parse_range({"since": self.time_range, "bucket": BUCKET_FOR_RANGE[self.time_range]}, settings)
            services = [s for s, _ in await list_services(reader, app_id)]
            state = await summary(reader, settings, app_id, settings.health_window_minutes)
            volume = await volume_series(reader, app_id, rng, services)
            rates = await error_rate_series(reader, app_id, rng, services)
            latency = await latency_series(reader, app_id, rng, [(s, ALL_ROUTES) for s in services])
        except ApiError as exc:
            self.page_error = readable(exc)
            return
        records = {r["service"]: r["records"] for r in rates}
        self.status, self.window_minutes = state["status"], state["window_minutes"]
        self.cards = [card_of(self.app_id, s, records.get(s["service"], 0), self.time_range) for s in state["services"]]
        self.volume = volume_rows(self.app_id, volume["points"], rng.bucket_s, self.time_range)
        timed = sorted((s for s in latency if s["total"]["requests"]), key=lambda s: -s["total"]["requests"])
        self.latency_services = [s["service"] for s in timed]
        if self.latency_service not in self.latency_services:
            self.latency_service = self.latency_services[0] if self.latency_services else ""
        chosen = next((s for s in timed if s["service"] == self.latency_service), None)
        self.latency = latency_rows(self.app_id, chosen, rng.bucket_s, self.time_range)
        self.top_errors = [{"service": e["service"] or "(no service)", "count": str(e["count"]),
                            "message": e["message"][:200], "last_seen": e["last_seen"][11:19]}
                           for e in state["top_errors"][:5]]
        self.updated = time.strftime("%H:%M:%S", time.gmtime())

    async def _reload(self) -> Any:
        try:
            user = await self._require_user()
            await apps.get_app(runtime.resources()["db"], user, self.app_id)
        except SignedOut:
            return self._to_signin()
        except ApiError as exc:
            self.page_error = readable(exc)
            return None
        await self._load_figures()
        return None

    @rx.event
    async def set_time_range(self, value: str) -> Any:
        self.time_range = value if value in RANGES else "24h"
        url = routes.app_health(self.app_id, {"range": self.time_range})
        redirect = await self._reload()
        if redirect is not None:
            return redirect
        return rx.call_script(f"window.history.replaceState(window.history.state, '', {json.dumps(url)})")

    @rx.event
    async def set_latency_service(self, value: str) -> Any:
        self.latency_service = value
        return await self._reload()

    @rx.event(background=True)
    async def refresh(self) -> None:
        """Reload the figures every REFRESH_SECONDS while this tab shows this app's Health view."""
        async with self:
            gen, app_id, token = self.refresh_gen, self.app_id, self.router.session.client_token
        if not app_id:
            return
        gone_since: float | None = None
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            now = time.monotonic()
            gone_since = None if runtime.client_connected(token) else (gone_since or now)
            if gone_since is not None and now - gone_since > DISCONNECTED_GRACE_SECONDS:
                return
            async with self:
                path = self.router.url.path
                if self.refresh_gen != gen or routes.app_id_in(path) != app_id or not path.endswith("/health"):
                    return
                try:
                    user = await self._require_user()
                    await apps.get_app(runtime.resources()["db"], user, app_id)
                except (SignedOut, ApiError):
                    self.refresh_gen += 1
                    return
                await self._refresh_apps(user)
                await self._load_figures()


def health_page() -> rx.Component:
    from frontend.components.app_header import app_header
    from frontend.components.health_view import charts, range_picker, service_cards, top_errors
    from frontend.components.layout import layout

    s = HealthState
    return layout(
        rx.cond(
            s.loaded,
            rx.cond(
                s.app_id != "",
                rx.vstack(
                    app_header(s.app_id, s.app_name, "health", range_picker()),
                    service_cards(),
                    charts(),
                    top_errors(),
                    width="100%",
                    spacing="4",
                ),
            ),
            rx.center(rx.spinner(size="3"), height="40vh"),
        )
    )

"""An app's Logs view: history through the query API's functions, then the live stream.

Filters (level, keyword, time range, service, environment) live in the URL, so a view can
be shared; they apply to history and to the live stream alike (the live stream uses the
hub's `LogFilter`, the same filters in Python, and the query's SQL for catch-up).

Live: one Reflex background task per tab follows the app through `follow_logs` (stored
lines after the last id shown, then the in-process hub) and sends the browser at most one
update per `BATCH_SECONDS`, whatever the ingest rate. The visible list keeps the newest
`MAX_ROWS` lines; older ones are a "Load older" away. Paused, the task only counts; resume
reads what arrived meanwhile with `after_id`, so nothing is missed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import reflex as rx

from frontend import routes, runtime
from frontend.logfmt import LEVEL_CHOICES, RANGE_CHOICES, detail_of, parse_custom_time, row_of
from frontend.session import ERROR_LEVEL, SessionState, SignedOut, readable
from server import apps
from server.errors import ApiError
from server.logs_query import LogQuery, parse_log_query, run_log_query

__all__ = ["BATCH_SECONDS", "MAX_HISTORY_ROWS", "MAX_ROWS", "LogsState"]

MAX_ROWS = 1000
# "Load older" may grow the list past MAX_ROWS (live held), up to this.
MAX_HISTORY_ROWS = 5000
PAGE_SIZE = 200
BATCH_SECONDS = 0.25
SESSION_CHECK_SECONDS = 5.0
HEALTH_REFRESH_SECONDS = 10.0
# Errors or a first line after silence bring the next refresh forward, at most this often.
HEALTH_RECHECK_SECONDS = 2.0
DISCONNECTED_GRACE_SECONDS = 60.0
_FILTER_KEYS = ("level", "q", "range", "since", "until", "service", "environment")


class LogsState(SessionState):
    app_id: str = ""
    app_name: str = ""
    rows: list[dict[str, str]] = rx.field(default_factory=list)
    loaded: bool = False
    has_any_logs: bool = False
    older_cursor: str = ""
    # Filters as applied (and in the URL); the *_input twins are what is being typed.
    level: str = ""
    q: str = ""
    q_input: str = ""
    time_range: str = "24h"
    since: str = ""
    until: str = ""
    service: str = ""
    service_input: str = ""
    environment: str = ""
    environment_input: str = ""
    filter_error: str = ""
    # Live stream.
    paused: bool = False
    new_count: int = 0
    live_note: str = ""
    stream_gen: int = 0
    # Highest id the stream has seen, and the highest id the list is complete up to
    # (they differ while paused).
    last_id: int = 0
    shown_id: int = 0
    # The newest rows were dropped to keep the list bounded while reading history.
    top_trimmed: bool = False
    # The expanded row.
    expanded_id: str = ""
    detail: dict[str, str] = rx.field(default_factory=dict)

    # ---- reading the URL and building queries -------------------------------------------

    def _filters(self) -> dict[str, str]:
        return {"level": self.level, "q": self.q, "range": self.time_range if self.time_range != "24h" else "",
                "since": self.since if self.time_range == "custom" else "",
                "until": self.until if self.time_range == "custom" else "",
                "service": self.service, "environment": self.environment}

    def _query_params(self) -> dict[str, str]:
        """The filters as query API parameters."""
        params = {"min_level": self.level, "q": self.q, "service": self.service, "environment": self.environment}
        if self.time_range == "custom":
            params["since"] = parse_custom_time(self.since) or ""
            params["until"] = parse_custom_time(self.until) or ""
        else:
            params["since"] = self.time_range
        return {k: v for k, v in params.items() if v}

    def _live_filter_params(self) -> dict[str, str]:
        return {k: v for k, v in (("min_level", self.level), ("q", self.q), ("service", self.service),
                                  ("environment", self.environment)) if v}

    def _query(self, cursor: str = "", **extra: Any) -> LogQuery:
        """The filters as a LogQuery, parsed (and validated) by the query API's own parser."""
        settings = runtime.settings()
        params = self._query_params()
        if cursor:
            params["cursor"] = cursor
        query = parse_log_query(_Params(params), PAGE_SIZE, settings.query_max_limit)
        for name, value in extra.items():
            setattr(query, name, value)
        return query

    @property
    def _live_possible(self) -> bool:
        return not (self.time_range == "custom" and self.until)

    def _url_script(self) -> rx.event.EventSpec:
        url = routes.app_logs(self.app_id, self._filters())
        return rx.call_script(f"window.history.replaceState(window.history.state, '', {json.dumps(url)})")

    # ---- loading --------------------------------------------------------------------------

    @rx.event
    async def load(self) -> Any:
        """on_load: the user, the app (ownership-checked), filters from the URL, history, live."""
        self.stream_gen += 1  # stops a stream this tab had before
        self.loaded = False
        self.expanded_id = ""
        self.rows = []
        user = await self._load_session()
        if user is None:
            return self._to_signin()
        params = self.router.url.query_parameters
        self.level = params.get("level", "").upper() if params.get("level", "").upper() in LEVEL_CHOICES else ""
        self.q = self.q_input = params.get("q", "")
        self.time_range = params.get("range", "24h") if params.get("range", "24h") in RANGE_CHOICES else "24h"
        self.since, self.until = params.get("since", ""), params.get("until", "")
        self.service = self.service_input = params.get("service", "")
        self.environment = self.environment_input = params.get("environment", "")
        self.paused = False
        self.new_count = 0
        if not await self._open_app_of_url(user):
            return None
        await self._load_history()
        return LogsState.stream

    async def _load_history(self) -> None:
        """The newest page matching the filters; resets the list and the live position."""
        db = runtime.resources()["db"]
        self.filter_error = ""
        self.expanded_id = ""
        try:
            page = await run_log_query(db, int(self.app_id), self._query(limit=PAGE_SIZE))
        except ApiError as exc:
            self.filter_error = readable(exc)
            page = {"logs": [], "next_cursor": None}
        self.rows = [row_of(log) for log in page["logs"]]
        self.top_trimmed = False
        self.older_cursor = page["next_cursor"] or ""
        newest = await run_log_query(db, int(self.app_id), LogQuery(limit=1))
        self.has_any_logs = bool(newest["logs"])
        # Live lines are those after the newest stored line, whatever the filters.
        self.last_id = self.shown_id = int(newest["logs"][0]["id"]) if newest["logs"] else 0
        self.new_count = 0
        self.loaded = True
        self.live_note = "" if self._live_possible else "Live updates are off for a range that ends in the past."

    async def _restart(self) -> Any:
        """After a filter change: re-check the user, reload history, restart the stream."""
        try:
            await self._require_user()
        except SignedOut:
            return [self._to_signin()]
        self.stream_gen += 1
        self.paused = False
        await self._load_history()
        return [self._url_script(), LogsState.stream]

    @rx.event
    async def load_older(self) -> Any:
        if not self.older_cursor:
            return None
        try:
            user = await self._require_user()
            db = runtime.resources()["db"]
            await apps.get_app(db, user, self.app_id)
            query = self._query(cursor=self.older_cursor, limit=PAGE_SIZE)
            page = await run_log_query(db, int(self.app_id), query)
        except SignedOut:
            return self._to_signin()
        except ApiError as exc:
            self.page_error = readable(exc)
            return None
        seen = {r["id"] for r in self.rows}
        self.rows = self.rows + [row_of(log) for log in page["logs"] if str(log["id"]) not in seen]
        self.older_cursor = page["next_cursor"] or ""
        if len(self.rows) > MAX_ROWS and not self.paused:
            # Reading history: hold the live stream so the rows being read stay put.
            self.paused = True
        if len(self.rows) > MAX_HISTORY_ROWS:
            # Still bounded: drop the newest rows (Resume reloads the newest page).
            self.rows = self.rows[-MAX_HISTORY_ROWS:]
            self.top_trimmed = True
        return None

    # ---- filters --------------------------------------------------------------------------

    @rx.event
    async def set_level(self, value: str) -> Any:
        self.level = "" if value == "all" else value
        return await self._restart()

    @rx.event
    async def set_time_range(self, value: str) -> Any:
        self.time_range = value if value in RANGE_CHOICES else "24h"
        if value == "custom":
            return None  # wait for the dates
        self.since = self.until = ""
        return await self._restart()

    @rx.event
    async def set_custom_range(self, form: dict[str, Any]) -> Any:
        self.since, self.until = str(form.get("since") or ""), str(form.get("until") or "")
        if self.since and parse_custom_time(self.since) is None:
            self.filter_error = "The start of the range is not a valid date and time."
            return None
        return await self._restart()

    @rx.event
    def set_q_input(self, value: str) -> None:
        self.q_input = value

    @rx.event
    def set_service_input(self, value: str) -> None:
        self.service_input = value

    @rx.event
    def set_environment_input(self, value: str) -> None:
        self.environment_input = value

    @rx.event
    async def apply_text_filters(self, _form: dict[str, Any] | None = None) -> Any:
        self.q = self.q_input.strip()
        self.service = self.service_input.strip()
        self.environment = self.environment_input.strip()
        return await self._restart()

    @rx.event
    async def clear_filters(self) -> Any:
        self.level = self.q = self.q_input = self.service = self.service_input = ""
        self.environment = self.environment_input = self.since = self.until = ""
        self.time_range = "24h"
        return await self._restart()

    # ---- rows -----------------------------------------------------------------------------

    @rx.event
    async def toggle_row(self, log_id: str) -> Any:
        if self.expanded_id == log_id:
            self.expanded_id = ""
            return None
        try:
            user = await self._require_user()
            db = runtime.resources()["db"]
            app = await apps.get_app(db, user, self.app_id)
            found = await run_log_query(db, app["id"], LogQuery(after_id=int(log_id) - 1, limit=1))
        except SignedOut:
            return self._to_signin()
        except (ApiError, ValueError) as exc:
            self.page_error = readable(exc)
            return None
        logs = [log for log in found["logs"] if str(log["id"]) == log_id]
        self.detail = detail_of(logs[0]) if logs else {}
        self.expanded_id = log_id if logs else ""
        return None

    # ---- live -----------------------------------------------------------------------------

    @rx.event
    async def pause(self) -> None:
        self.paused = True

    @rx.event
    async def resume(self) -> Any:
        """Catch up on what arrived while paused (after the newest line shown), then go live."""
        try:
            user = await self._require_user()
            db = runtime.resources()["db"]
            app = await apps.get_app(db, user, self.app_id)
            page = await run_log_query(db, app["id"], self._query(after_id=self.shown_id, limit=MAX_ROWS))
        except SignedOut:
            return self._to_signin()
        except ApiError as exc:
            self.page_error = readable(exc)
            return None
        self.paused = False
        self.new_count = 0
        if page.get("has_more") or self.top_trimmed:
            await self._load_history()  # more than a screenful: show the newest page
            return None
        fresh = [row_of(log) for log in reversed(page["logs"])]
        seen = {r["id"] for r in self.rows}
        self.rows = ([r for r in fresh if r["id"] not in seen] + self.rows)[:MAX_ROWS]
        if page["logs"]:
            self.last_id = max(self.last_id, int(page["logs"][-1]["id"]))
        self.shown_id = self.last_id
        return None

    def _health_may_change(self, lines: list[dict[str, Any]]) -> bool:
        """Whether these live lines can change this app's dot (an error, or a first line after
        silence): then the dot is recomputed by the health rule right away, not guessed here,
        so it never shows a state the rule would take back at the next refresh."""
        if any(int(line["level_number"]) >= ERROR_LEVEL for line in lines):
            return True
        return any(entry["id"] == self.app_id and entry["health"] == "silent" for entry in self.apps)

    def _since_us(self) -> int | None:
        """The time range's start, for live lines (their timestamps come from the client)."""
        query = self._query()
        return query.since_us

    def _apply_lines(self, lines: list[dict[str, Any]]) -> None:
        fresh = [line for line in lines if int(line["id"]) > self.last_id]
        if not fresh:
            return
        self.last_id = int(fresh[-1]["id"])
        self.has_any_logs = True
        since = self._since_us()
        if since is not None:
            fresh = [line for line in fresh if int(line["ts_us"]) >= since]
            if not fresh:
                return
        if self.paused:
            self.new_count += len(fresh)
            return
        self.shown_id = self.last_id
        rows = [row_of(line) for line in reversed(fresh[-MAX_ROWS:])]
        self.rows = (rows + self.rows)[:MAX_ROWS]

    @rx.event(background=True)
    async def stream(self) -> None:
        """Follow the app while this tab shows it; one browser update per batch of lines."""
        from server.hub import HubClosed, Skipped
        from server.hub.filters import LogFilter
        from server.hub.follow import follow_logs

        async with self:
            gen, app_id, after = self.stream_gen, self.app_id, self.last_id
            if not app_id or not self._live_possible:
                return
            log_filter = LogFilter.parse(self._live_filter_params())
            token = self.router.session.client_token
        resources = runtime.resources()
        db, hub = resources["db"], resources.get("hub")
        if hub is None:
            return
        async with self:
            # Events can be sent by any client: check the session and the app here too.
            try:
                user = await self._require_user()
                await apps.get_app(db, user, app_id)
            except (SignedOut, ApiError):
                return
        next_check = time.monotonic() + SESSION_CHECK_SECONDS
        next_health = time.monotonic() + HEALTH_REFRESH_SECONDS
        last_health = 0.0
        gone_since: float | None = None
        try:
            async with follow_logs(db, hub, int(app_id), log_filter, after_id=after) as follower:
                while True:
                    lines: list[dict[str, Any]] = []
                    event = await follower.next(timeout=1.0)
                    if event is not None:
                        # Collect for one batch interval: one browser update per batch.
                        await asyncio.sleep(BATCH_SECONDS)
                        while event is not None:
                            if not isinstance(event, Skipped):
                                lines.extend(event.logs)
                            if len(lines) >= 5 * MAX_ROWS:
                                break
                            event = await follower.next(timeout=0)
                    now = time.monotonic()
                    connected = runtime.client_connected(token)
                    gone_since = None if connected else (gone_since or now)
                    if gone_since is not None and now - gone_since > DISCONNECTED_GRACE_SECONDS:
                        return
                    if not lines and now < next_check:
                        continue
                    async with self:
                        path = self.router.url.path
                        if self.stream_gen != gen or routes.app_id_in(path) != app_id or not path.endswith("/logs"):
                            return
                        if now >= next_check:
                            next_check = now + SESSION_CHECK_SECONDS
                            try:
                                await self._require_user()
                            except SignedOut:
                                self.stream_gen += 1
                                return
                        if lines and now - last_health >= HEALTH_RECHECK_SECONDS and self._health_may_change(lines):
                            next_health = now
                        if now >= next_health:
                            last_health = now
                            next_health = now + HEALTH_REFRESH_SECONDS
                            user = await self._require_user()
                            await self._refresh_apps(user)
                        self._apply_lines(lines)
        except HubClosed:
            async with self:
                if self.stream_gen == gen:
                    self.live_note = "The server is restarting; live updates resume when it is back."


class _Params(dict[str, str]):
    """A plain dict with the `getlist` the query parser expects."""

    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []



def logs_page() -> rx.Component:
    from frontend.components.app_header import app_header
    from frontend.components.layout import layout
    from frontend.components.log_view import empty_state, filter_bar, live_bar, log_list

    s = LogsState
    return layout(
        rx.cond(
            s.loaded,
            rx.cond(
                s.app_id != "",
                rx.vstack(
                    app_header(s.app_id, s.app_name, "logs"),
                    rx.cond(
                        s.has_any_logs,
                        rx.vstack(filter_bar(), live_bar(), log_list(), width="100%", spacing="3"),
                        empty_state(),
                    ),
                    width="100%",
                    spacing="0",
                ),
            ),
            rx.center(rx.spinner(size="3"), height="40vh"),
        )
    )

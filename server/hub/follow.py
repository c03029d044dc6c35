"""Following one app's logs: stored lines after an id, then the live stream, with no gap and
no duplicate at the seam. Used by the WebSocket tail and usable from any coroutine.

How the seam works: subscribe to the hub first, then read the database. Every line is
either committed before the read (the read sees it) or published after the subscription
(the queue has it), and ids are committed in increasing order, so de-duplicating by id
(`position`, the highest id delivered or skipped) joins the two exactly.
With a shared backend (Redis, PostgreSQL) two server processes may publish commits in a
different order than they committed; a live batch that starts above position + 1 then
first reads the lines in between from the database (which has them: the later commit's
ids were allocated after the earlier commit finished).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from server.hub.filters import LogFilter
from server.hub.hub import Hub, LogBatch, Skipped, Subscription
from server.logs_query import build_sql, row_to_api

__all__ = ["Lines", "LogFollower", "follow_logs"]


@dataclass(frozen=True)
class Lines:
    """Lines to show, oldest first. `source` is "stored" (read from the database) or "live"."""

    source: str
    logs: list[dict[str, Any]]
    raw: list[bytes]


class LogFollower:
    """Iterate with `await next(timeout)`; change `log_filter` with `set_filter` at any time."""

    def __init__(
        self, db: Any, sub: Subscription, log_filter: LogFilter, position: int, backlog: bool, page_size: int,
        frame_max_lines: int,
    ) -> None:
        self.db, self.sub, self.log_filter = db, sub, log_filter
        self.position = position
        self.page_size, self.frame_max_lines = page_size, frame_max_lines
        self._backlog = backlog
        self._gap_before: int | None = None  # reading stored lines below this id before `_held`
        self._filled_to = 0  # stored lines below this id have been read
        self._held: collections.deque[LogBatch | Skipped] = collections.deque()
        sub.match = log_filter.match

    def set_filter(self, log_filter: LogFilter) -> None:
        """Lines after `position` are shown with the new filter; nothing earlier is re-sent."""
        self.log_filter = log_filter
        self.sub.match = log_filter.match

    async def _stored(self, before: int | None) -> Lines | None:
        query = self.log_filter.to_query(self.position, self.page_size)
        sql, values = build_sql(self.db.dialect, self.sub.app_id, query)
        if before is not None:
            sql = sql.replace(" ORDER BY", " AND l.id < :before ORDER BY", 1)
            values["before"] = before
        rows = await self.db.fetch_all(sql, values)
        more = len(rows) > self.page_size
        logs = [row_to_api(r) for r in rows[: self.page_size]]
        if before is None:
            self._backlog = more
        elif not more:
            self._filled_to, self._gap_before = before, None
        if not logs:
            return None
        self.position = logs[-1]["id"]
        return Lines("stored", logs, [orjson.dumps(line) for line in logs])

    def _take_live(self, first: LogBatch) -> Lines | Skipped | None:
        """Join queued live batches into one frame (about `frame_max_lines`), de-duplicated by id."""
        logs: list[dict[str, Any]] = []
        raw: list[bytes] = []
        item: LogBatch | Skipped | None = first
        match = self.log_filter.match
        while item is not None:
            if isinstance(item, Skipped):
                if logs:
                    self._held.appendleft(item)
                    break
                self.position = max(self.position, item.through_id)
                return item
            new = [(line, enc) for line, enc in zip(item.logs, item.raw, strict=True)
                   if line["id"] > self.position and match(line)]
            if new:
                first_id = new[0][0]["id"]
                if self.sub.hub.may_have_gaps and first_id > self.position + 1 and first_id > self._filled_to:
                    # Maybe another process's earlier commit is still on its way: read it first.
                    self._held.appendleft(item)
                    if not logs:
                        self._gap_before = first_id
                    break
                for line, enc in new:
                    logs.append(line)
                    raw.append(enc)
                self.position = new[-1][0]["id"]
            if len(logs) >= self.frame_max_lines:
                break
            item = self._held.popleft() if self._held else self.sub.get_nowait()
        return Lines("live", logs, raw) if logs else None

    async def next(self, timeout: float | None = None) -> Lines | Skipped | None:
        """The next lines or skip marker; None when nothing arrived within `timeout` seconds.
        Raises HubClosed when the hub shuts down."""
        while True:
            if self._gap_before is not None:
                lines = await self._stored(self._gap_before)
                if lines is not None:
                    return lines
                continue
            if self._backlog:
                lines = await self._stored(None)
                if lines is not None:
                    return lines
                continue
            item = self._held.popleft() if self._held else await self.sub.get(timeout)
            if item is None:
                return None
            if isinstance(item, Skipped):
                self.position = max(self.position, item.through_id)
                return item
            taken = self._take_live(item)
            if taken is not None:
                return taken


@contextlib.asynccontextmanager
async def follow_logs(
    db: Any, hub: Hub, app_id: int, log_filter: LogFilter | None = None, after_id: int | None = None, *,
    page_size: int = 500, frame_max_lines: int = 1000, max_lines: int | None = None,
) -> AsyncIterator[LogFollower]:
    """Follow `app_id`: with `after_id`, stored lines after it first; without, only lines
    committed from now on. The caller must own the app (check with `apps.get_app`)."""
    log_filter = log_filter or LogFilter()
    async with hub.subscribe(app_id, match=log_filter.match, max_lines=max_lines) as sub:
        if after_id is None:
            position = int(await db.fetch_val("SELECT COALESCE(MAX(id), 0) FROM logs") or 0)
        else:
            position = max(0, after_id)
        yield LogFollower(db, sub, log_filter, position, after_id is not None, page_size, frame_max_lines)

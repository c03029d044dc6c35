"""The hub: committed log batches out to per-subscriber bounded queues, per app.

Publishing (`publish_rows`, the writer's commit listener) encodes the rows once and hands
them to a bounded outbound queue; a publisher task sends them to the backend (or, with the
in-process `memory://` backend, straight to the local subscribers). One reader task takes
every backend message and offers it to each local subscriber of that app with a
non-blocking append. Nothing on the publish path ever awaits a subscriber.

Bounds and overflow (all counted in `Hub.stats`, shown by GET /healthz):
- outbound queue: `publish_queue_max` batches; past it a batch is not published
  (`publish_dropped_batches`); shared-backend followers re-read such gaps from the database.
- each subscriber: `queue_max_lines` lines (at least one batch is always accepted). On
  overflow the subscriber stops receiving until it has drained its queue, then gets one
  `Skipped(count, after_id, through_id)` marker at the exact place of the gap, then live
  batches again. `skipped_lines` / `skip_events` count it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from server.hub._backend import Backend, BackendClosed
from server.logs_query import row_to_api

__all__ = ["Hub", "HubClosed", "LogBatch", "LogMatch", "Skipped", "Subscription"]

log = logging.getLogger("server.hub")
LogMatch = Callable[[dict[str, Any]], bool]


class HubClosed(Exception):
    """The hub disconnected (server shutting down); the subscription ends."""


class LogBatch:
    """Log lines of one app, in id order. `logs[i]` is the `row_to_api` dict and `raw[i]` its
    JSON encoding. Both are computed on first use and shared by every subscriber of the batch
    (treat them as read-only), so lines that no subscriber consumes are never converted."""

    def __init__(
        self, app_id: int, logs: list[dict[str, Any]] | None = None, raw: list[bytes] | None = None, *,
        rows: list[tuple[Any, ...]] | None = None,
    ) -> None:
        self.app_id = app_id
        self._logs, self._raw, self._rows = logs, raw, rows
        source: list[Any] = rows if rows is not None else raw if raw is not None else logs or []
        self.size = len(source)

    def __repr__(self) -> str:
        return f"LogBatch(app_id={self.app_id}, size={self.size})"

    @property
    def logs(self) -> list[dict[str, Any]]:
        if self._logs is None:
            if self._rows is not None:
                self._logs = [row_to_api(r) for r in self._rows]
            else:
                self._logs = [orjson.loads(line) for line in self._raw or ()]
        return self._logs

    @property
    def raw(self) -> list[bytes]:
        if self._raw is None:
            self._raw = [orjson.dumps(line) for line in self.logs]
        return self._raw

    @property
    def last_id(self) -> int:
        if self._rows is not None:
            return int(self._rows[-1][0])
        if self._logs is not None:
            return int(self._logs[-1]["id"])
        return int(orjson.loads((self._raw or [b"{}"])[-1])["id"])

    def only(self, match: LogMatch | None) -> LogBatch:
        if match is None:
            return self
        keep = [i for i, line in enumerate(self.logs) if match(line)]
        if len(keep) == self.size:
            return self
        raw = self.raw
        return LogBatch(self.app_id, [self.logs[i] for i in keep], [raw[i] for i in keep])


@dataclass(frozen=True)
class Skipped:
    """`count` lines of the app (before the subscriber's filter) with ids in (after_id,
    through_id] were not delivered because the subscriber fell behind. They are stored: read
    them with after_id (resume)."""

    count: int
    after_id: int
    through_id: int


class Subscription:
    """One subscriber's view of one app. Iterate it, or `await get()`; change `match` at any time."""

    def __init__(self, hub: Hub, app_id: int, match: LogMatch | None, max_lines: int) -> None:
        self.hub, self.app_id, self.match, self.max_lines = hub, app_id, match, max_lines
        self._queue: collections.deque[LogBatch] = collections.deque()
        self._lines = 0
        self._last_offered = 0
        self._skip: list[int] | None = None  # [count, after_id, through_id] while skipping
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def queued_lines(self) -> int:
        return self._lines

    def _offer(self, batch: LogBatch) -> None:
        """Called by the hub; never awaits, never blocks, never converts (filtering is done by `get`)."""
        n = batch.size
        if not n:
            return
        last = batch.last_id
        if self._skip is None and self._queue and self._lines + n > self.max_lines:
            self._skip = [0, self._last_offered, last]
            self.hub.stats["skip_events"] += 1
        if self._skip is not None:
            self._skip[0] += n
            self._skip[2] = max(self._skip[2], last)
            self.hub.stats["skipped_lines"] += n
            return
        self._queue.append(batch)
        self._lines += n
        self._last_offered = max(self._last_offered, last)
        self._wakeup.set()

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def get_nowait(self) -> LogBatch | Skipped | None:
        """The next batch or skip marker if one is waiting, else None."""
        while self._queue:
            batch = self._queue.popleft()
            self._lines -= batch.size
            batch = batch.only(self.match)
            if batch.size:
                self.hub.stats["delivered_lines"] += batch.size
                return batch
        if self._skip is not None:
            count, after_id, through_id = self._skip
            self._skip = None
            self._last_offered = through_id
            return Skipped(count, after_id, through_id)
        return None

    async def get(self, timeout: float | None = None) -> LogBatch | Skipped | None:
        """The next batch or skip marker; None after `timeout` seconds. Raises HubClosed."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                raise HubClosed("the live tail hub disconnected")
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LogBatch | Skipped:
        try:
            item = await self.get()
        except HubClosed:
            raise StopAsyncIteration from None
        assert item is not None
        return item


class Hub:
    """Pub/sub of committed log lines, one channel per app. See docs/live-tail.md."""

    def __init__(
        self, backend: Backend, *, channel_prefix: str = "sentry_logger", queue_max_lines: int = 10_000,
        publish_queue_max: int = 10_000,
    ) -> None:
        self.backend = backend
        self.channel_prefix = channel_prefix
        self.queue_max_lines = queue_max_lines
        self._outbox: asyncio.Queue[LogBatch] = asyncio.Queue(publish_queue_max)
        self._subscribers: dict[int, set[Subscription]] = {}
        self._channel_locks: dict[int, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {
            "published_batches": 0, "published_lines": 0, "publish_dropped_batches": 0, "publish_failures": 0,
            "received_batches": 0, "delivered_lines": 0, "skipped_lines": 0, "skip_events": 0,
        }

    @property
    def shared(self) -> bool:
        return self.backend.shared

    @property
    def may_have_gaps(self) -> bool:
        """Whether a follower must check the database for lines missing from the live stream:
        other processes publish too (arrival order may differ from commit order), or a
        batch was not published (outbox full, backend error)."""
        s = self.stats
        return self.backend.shared or bool(s["publish_dropped_batches"] or s["publish_failures"] or self.backend.dropped)

    def metrics(self) -> dict[str, int]:
        """Counters for /healthz: totals since start plus current subscribers and queued lines."""
        subs = [s for group in self._subscribers.values() for s in group]
        return {
            **self.stats, "backend_dropped": self.backend.dropped, "subscribers": len(subs),
            "queued_lines": sum(s.queued_lines for s in subs), "outbox": self._outbox.qsize(),
        }

    def channel(self, app_id: int) -> str:
        return f"{self.channel_prefix}_app_{app_id}"

    async def connect(self) -> None:
        await self.backend.connect()
        self._tasks = [
            asyncio.create_task(self._read(), name="hub-reader"), asyncio.create_task(self._send(), name="hub-publisher"),
        ]

    async def disconnect(self) -> None:
        """Flush what is waiting to be published (briefly), stop, and end every subscription."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._outbox.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.backend.disconnect()
        for group in self._subscribers.values():
            for sub in group:
                sub._close()

    async def publish_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The writer's commit listener: committed rows (COLUMNS order), any apps, in id order.
        Never blocks. In-process (`memory://`), apps nobody tails cost nothing."""
        local_only = not self.backend.shared
        if local_only and not self._subscribers:
            return
        by_app: dict[int, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_app.setdefault(int(row[1]), []).append(row)
        for app_id, app_rows in by_app.items():
            if local_only and app_id not in self._subscribers:
                continue
            try:
                self._outbox.put_nowait(LogBatch(app_id, rows=app_rows))
            except asyncio.QueueFull:
                self.stats["publish_dropped_batches"] += 1
                continue
            self.stats["published_batches"] += 1
            self.stats["published_lines"] += len(app_rows)

    def _fan_out(self, batch: LogBatch) -> None:
        self.stats["received_batches"] += 1
        for sub in tuple(self._subscribers.get(batch.app_id, ())):
            sub._offer(batch)

    async def _send(self) -> None:
        while True:
            batch = await self._outbox.get()
            try:
                if self.backend.shared:
                    # One encoded line per row, newline-separated (JSON never contains a raw newline).
                    await self.backend.publish(self.channel(batch.app_id), b"\n".join(batch.raw))
                else:
                    self._fan_out(batch)
            except Exception as exc:  # noqa: BLE001 - a backend outage must not end the publisher
                self.stats["publish_failures"] += 1
                log.warning("live tail publish failed: %s", exc)
            finally:
                self._outbox.task_done()

    async def _read(self) -> None:
        prefix = f"{self.channel_prefix}_app_"
        while True:
            try:
                channel, message = await self.backend.next_message()
            except BackendClosed:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the backend reconnects; keep reading
                log.warning("live tail backend read failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if not channel.startswith(prefix):
                continue
            app_id = int(channel[len(prefix):])
            subs = self._subscribers.get(app_id)
            if not subs:
                continue
            self._fan_out(LogBatch(app_id, raw=message.split(b"\n")))

    @contextlib.asynccontextmanager
    async def subscribe(
        self, app_id: int, *, match: LogMatch | None = None, max_lines: int | None = None
    ) -> AsyncIterator[Subscription]:
        """Live batches of `app_id` committed from now on (the backend has confirmed the
        subscription when this enters). Always unsubscribes on exit."""
        sub = Subscription(self, app_id, match, max_lines or self.queue_max_lines)
        async with self._channel_locks[app_id]:
            group = self._subscribers.setdefault(app_id, set())
            if not group:
                await self.backend.subscribe(self.channel(app_id))
            group.add(sub)
        try:
            yield sub
        finally:
            async with self._channel_locks[app_id]:
                group = self._subscribers.get(app_id, set())
                group.discard(sub)
                if not group:
                    self._subscribers.pop(app_id, None)
                    with contextlib.suppress(Exception):
                        await self.backend.unsubscribe(self.channel(app_id))

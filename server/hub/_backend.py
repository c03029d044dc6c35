"""The broadcast backend interface and the in-process `memory://` backend.

A backend moves opaque byte messages on named channels, nothing more. The hub (`hub.py`)
owns everything per subscriber; a backend only has to keep each publisher's messages in
order and deliver every message published after `subscribe(channel)` has returned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["Backend", "BackendClosed", "MemoryBackend"]

log = logging.getLogger("server.hub")


class BackendClosed(Exception):
    """`next_message` was interrupted because the backend disconnected."""


class Backend(Protocol):
    #: Whether other server processes publish into the same stream. Then messages of two
    #: processes can arrive in a different order than their commits (see follow.py).
    shared: bool
    #: Messages the backend dropped because its bounded inbound buffer was full.
    dropped: int

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Returns once every message published to `channel` from now on will be delivered."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    async def next_message(self) -> tuple[str, bytes]:
        """The next message of any subscribed channel; raises BackendClosed after disconnect."""


class MemoryBackend:
    """One process only. The hub does not route its own batches through it (it hands them to
    local subscribers as objects, without encoding); it serves direct users of the interface.
    Bound: `max_pending` undelivered messages; past it the newest is dropped and counted."""

    shared = False

    def __init__(self, max_pending: int = 10_000) -> None:
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(max_pending)
        self._channels: set[str] = set()
        self.dropped = 0

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            # Make room for the sentinel: the reader is going away anyway.
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: bytes) -> None:
        if channel not in self._channels:
            return
        try:
            self._queue.put_nowait((channel, message))
        except asyncio.QueueFull:
            self.dropped += 1

    async def next_message(self) -> tuple[str, bytes]:
        item = await self._queue.get()
        if item is None:
            raise BackendClosed()
        return item

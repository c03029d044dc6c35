"""`postgresql://` backend: LISTEN/NOTIFY on two dedicated asyncpg connections (imported lazily).

A NOTIFY payload must stay under 8,000 bytes, so a message is split into chunks of at most
`CHUNK_BYTES` (cut on UTF-8 character boundaries), each prefixed with "<message id> <index>
<count> ". All chunks of one message are sent by one statement, i.e. one transaction, so
PostgreSQL delivers them together and in order; the receiver joins them. Bound: at most
`MAX_PARTIAL` half-received messages and `MAX_PENDING` received messages wait; past either
the oldest partial / the newest message is dropped and counted in `dropped`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import secrets
from typing import Any

from server.hub._backend import BackendClosed

__all__ = ["CHUNK_BYTES", "PostgresBackend", "split_utf8"]

CHUNK_BYTES = 7_800
MAX_PARTIAL = 64
MAX_PENDING = 10_000
_NOTIFY_MANY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"


def split_utf8(data: bytes, size: int) -> list[str]:
    """`data` (UTF-8) as text pieces of at most `size` bytes each, never cutting a character."""
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces or [""]


class PostgresBackend:
    shared = True

    def __init__(self, url: str) -> None:
        self.url = "postgresql://" + url.split("://", 1)[1]
        self.dropped = 0
        self._listen: Any = None
        self._notify: Any = None
        self._channels: set[str] = set()
        self._pending: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(MAX_PENDING)
        self._partial: collections.OrderedDict[str, list[str | None]] = collections.OrderedDict()
        self._ids = itertools.count()
        self._origin = secrets.token_hex(4)
        self._closed = False

    def __repr__(self) -> str:
        from server.db import hide_password

        return f"PostgresBackend({hide_password(self.url)!r})"

    async def connect(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self.url)
        self._notify = await asyncpg.connect(self.url)

    async def disconnect(self) -> None:
        self._closed = True
        for conn in (self._listen, self._notify):
            if conn is not None and not conn.is_closed():
                await conn.close()
        self._put(None)

    async def subscribe(self, channel: str) -> None:
        # LISTEN has taken effect when this returns (autocommit).
        await self._listen.add_listener(channel, self._on_notify)
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        await self._listen.remove_listener(channel, self._on_notify)

    async def publish(self, channel: str, message: bytes) -> None:
        pieces = split_utf8(message, CHUNK_BYTES)
        message_id = f"{self._origin}.{next(self._ids)}"
        payloads = [f"{message_id} {i} {len(pieces)} {piece}" for i, piece in enumerate(pieces)]
        if self._notify.is_closed():
            import asyncpg

            self._notify = await asyncpg.connect(self.url)
        await self._notify.execute(_NOTIFY_MANY, channel, payloads)

    def _put(self, item: tuple[str, bytes] | None) -> None:
        try:
            self._pending.put_nowait(item)
        except asyncio.QueueFull:
            if item is None:  # the reader must learn that we are closing
                self._pending.get_nowait()
                self._pending.put_nowait(None)
            else:
                self.dropped += 1

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message_id, index_s, count_s, piece = payload.split(" ", 3)
            index, count = int(index_s), int(count_s)
        except ValueError:
            return  # not ours
        if count == 1:
            self._put((channel, piece.encode()))
            return
        parts = self._partial.get(message_id)
        if parts is None:
            parts = self._partial[message_id] = [None] * count
            if len(self._partial) > MAX_PARTIAL:
                self._partial.popitem(last=False)
                self.dropped += 1
        parts[index] = piece
        if all(p is not None for p in parts):
            del self._partial[message_id]
            self._put((channel, "".join(p for p in parts if p is not None).encode()))

    async def _reconnect(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self.url)
        for channel in self._channels:
            await self._listen.add_listener(channel, self._on_notify)

    async def next_message(self) -> tuple[str, bytes]:
        while True:
            try:
                async with asyncio.timeout(1.0):
                    item = await self._pending.get()
            except TimeoutError:
                if not self._closed and self._listen.is_closed():
                    await self._reconnect()  # notifications sent meanwhile are lost (see follow.py)
                continue
            if item is None:
                raise BackendClosed()
            return item

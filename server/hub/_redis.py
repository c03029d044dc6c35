"""`redis://` backend: Redis pub/sub, one channel per app (redis.asyncio, imported lazily).

Publishes go through the client's connection pool from the hub's single publisher task, so
one process's messages stay in order. Subscriptions share one pub/sub connection; `subscribe`
returns after Redis has confirmed it. If the connection drops, redis-py reconnects and
re-subscribes on the next read; messages published meanwhile are lost to this process
(followers re-read such gaps from the database at the next batch, see follow.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from server.hub._backend import BackendClosed

__all__ = ["RedisBackend"]

_CONTROL_CHANNEL = "sentry_logger_hub_control"


class RedisBackend:
    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.dropped = 0
        self._client: Any = None
        self._pubsub: Any = None
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        from server.db import hide_password

        return f"RedisBackend({hide_password(self.url)!r})"

    async def connect(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(self.url)
        self._pubsub = self._client.pubsub()
        # The pub/sub connection exists only once something is subscribed: a control channel
        # keeps it open so the reader can always block on it.
        await self._pubsub.subscribe(_CONTROL_CHANNEL)
        reply = await self._pubsub.get_message(timeout=10)
        if not reply or reply.get("type") != "subscribe":
            raise ConnectionError(f"Redis did not confirm the subscription: {reply!r}")

    async def disconnect(self) -> None:
        self._closed = True
        for future in self._confirmations.values():
            if not future.done():
                future.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = future
        try:
            await self._pubsub.subscribe(channel)
            async with asyncio.timeout(10):
                await future
        finally:
            self._confirmations.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: bytes) -> None:
        await self._client.publish(channel, message)

    async def next_message(self) -> tuple[str, bytes]:
        while True:
            if self._closed:
                raise BackendClosed()
            reply = await self._pubsub.get_message(timeout=None)
            if reply is None:
                continue
            kind = reply["type"]
            channel = reply["channel"].decode() if isinstance(reply["channel"], bytes) else str(reply["channel"])
            if kind == "subscribe":
                future = self._confirmations.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == "message":
                return channel, bytes(reply["data"])

"""Live tail pub/sub: committed log lines to every subscriber of an app, in any server process.

`create_hub(url)` picks the backend by URL scheme (imported lazily):
`memory://` (default, one process), `redis://` / `rediss://` (Redis pub/sub) and
`postgresql://` / `postgres://` (LISTEN/NOTIFY, messages chunked under its 8,000-byte limit).
The Python interface is documented in docs/live-tail.md.
"""

from __future__ import annotations

from server.hub._backend import Backend, BackendClosed, MemoryBackend
from server.hub.hub import Hub, HubClosed, LogBatch, LogMatch, Skipped, Subscription

__all__ = [
    "Backend",
    "BackendClosed",
    "Hub",
    "HubClosed",
    "LogBatch",
    "LogMatch",
    "MemoryBackend",
    "Skipped",
    "Subscription",
    "create_backend",
    "create_hub",
]


def create_backend(url: str) -> Backend:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("redis", "rediss", "unix"):
        from server.hub._redis import RedisBackend

        return RedisBackend(url)
    if scheme in ("postgres", "postgresql"):
        from server.hub._postgres import PostgresBackend

        return PostgresBackend(url)
    raise ValueError(f"setting HUB_URL: unsupported scheme {scheme!r}; use memory://, redis:// or postgresql://")


def create_hub(
    url: str = "memory://", *, channel_prefix: str = "sentry_logger", queue_max_lines: int = 10_000,
    publish_queue_max: int = 10_000,
) -> Hub:
    """A hub on the backend named by `url` (not connected yet: `await hub.connect()`)."""
    return Hub(
        create_backend(url), channel_prefix=channel_prefix, queue_max_lines=queue_max_lines,
        publish_queue_max=publish_queue_max,
    )

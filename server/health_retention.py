"""Retention of the health aggregates, and the health resources' lifecycle in the app.

Per-minute rows are kept HEALTH_MINUTE_RETENTION_DAYS, per-hour rows
HEALTH_HOUR_RETENTION_DAYS, per-day rows HEALTH_DAY_RETENTION_DAYS (0 keeps them). The
prune runs every PRUNE_INTERVAL_S and deletes by primary-key prefix (app, res, service
[, route]) so it never scans a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from server.db import DB
from server.health_store import HealthReader
from server.settings import Settings

__all__ = ["PRUNE_INTERVAL_S", "health_running", "prune"]

log = logging.getLogger("server.health")
PRUNE_INTERVAL_S = 600.0
_BY_SERVICE = ("health_counts", "health_errors")
_BY_ROUTE = ("health_latency",)


def _cutoffs(settings: Settings, now_s: int) -> list[tuple[int, int]]:
    kept = ((60, settings.health_minute_retention_days), (3600, settings.health_hour_retention_days),
            (86400, settings.health_day_retention_days))
    return [(res, now_s - days * 86400) for res, days in kept if days > 0]


async def prune(db: DB, settings: Settings, now_s: int | None = None) -> int:
    """Delete aggregates past their retention; returns how many statements ran."""
    now_s = int(time.time()) if now_s is None else now_s
    cutoffs = _cutoffs(settings, now_s)
    services = await db.fetch_all("SELECT app_id, service FROM health_services")
    routes = await db.fetch_all("SELECT app_id, service, route FROM health_routes")
    statements = 0
    for res, cutoff in cutoffs:
        for s in services:
            for table in _BY_SERVICE:
                await db.execute(
                    f"DELETE FROM {table} WHERE app_id = :a AND res = :r AND service = :s AND start_s < :c",
                    {"a": s["app_id"], "r": res, "s": s["service"], "c": cutoff},
                )
                statements += 1
        for r in [*routes, *({"app_id": s["app_id"], "service": s["service"], "route": "*"} for s in services)]:
            for table in _BY_ROUTE:
                await db.execute(
                    f"DELETE FROM {table} WHERE app_id = :a AND res = :r AND service = :s AND route = :rt "
                    "AND start_s < :c",
                    {"a": r["app_id"], "r": res, "s": r["service"], "rt": r["route"], "c": cutoff},
                )
                statements += 1
    return statements


async def _prune_loop(db: DB, settings: Settings) -> None:
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        try:
            await prune(db, settings)
        except Exception as exc:  # noqa: BLE001 - a failed prune is retried next interval
            log.warning("health retention prune failed: %s", exc)


@contextlib.asynccontextmanager
async def health_running(reader: HealthReader, db: DB, settings: Settings) -> AsyncIterator[None]:
    """Open the health reader and run the retention prune while the app runs."""
    await reader.open()
    task = asyncio.create_task(_prune_loop(db, settings), name="health-retention")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reader.close()

"""The ASGI application: declared routes, one lifespan that owns every resource."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server import api, device, health, native, oidc, signin, tail
from server._device_codes import WrongCodeLimiter
from server.db import DB, hide_password
from server.errors import exception_handlers
from server.health_aggregate import HealthAggregator
from server.health_retention import health_running
from server.health_store import HealthReader
from server.hub import create_hub
from server.ingest import ingest
from server.ingest_keys import IngestKeys
from server.ingest_validate import Limits
from server.migrate import apply_migrations
from server.nul_guard import NulGuard
from server.openapi import openapi_document
from server.ratelimit import TokenBuckets
from server.settings import Settings, load_settings
from server.writer import LogWriter

__all__ = ["create_app", "routes"]

log = logging.getLogger("server")

# Ingest allocates ~300 short-lived containers per request and makes no reference cycles, so
# the default collector (a pass every 700 allocations) ran every other request and showed as
# 30% of the ingest handler's time. Collect every 50,000 allocations instead, and freeze what
# start-up built (modules, the dashboard) so full collections never walk it (ingest: +11%).
_GC_THRESHOLD = (50_000, 20, 20)
# A thread that gives up the GIL (the SQLite writer, after each statement) waits this long for
# the busy event loop to hand it back; the default 5 ms made the writer wait 30% of its time.
# 100 us: SQLite ingest 67k -> 86k logs/s (docs/benchmarks.md).
_SWITCH_INTERVAL_S = 0.0001
_runtime_tuned = False


def tune_runtime() -> None:
    """Garbage collector and GIL switch interval for a server process (once per process)."""
    global _runtime_tuned
    if not _runtime_tuned:
        _runtime_tuned = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(*_GC_THRESHOLD)
        sys.setswitchinterval(_SWITCH_INTERVAL_S)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.state.settings.base_url))


async def healthz(request: Request) -> Response:
    await request.state.db.fetch_val("SELECT 1")
    live_tail = {**request.state.hub.metrics(), **request.state.tails.metrics()}
    return JSONResponse({"status": "ok", "writer_queue": request.state.writer.queued_records, "live_tail": live_tail,
                         "health_aggregator": request.state.health_aggregator.stats})


routes: list[BaseRoute] = [
    Route("/ingest", ingest, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    *api.routes,
    *health.routes,
    *device.routes,
    *tail.routes,
    *signin.routes,
]


def build_state(settings: Settings) -> dict[str, Any]:
    db = DB(settings.database_url)
    return {
        "settings": settings,
        "db": db,
        "writer": LogWriter(
            db,
            max_queue_records=settings.ingest_queue_max_records,
            max_commit_records=settings.ingest_commit_max_records,
            batch_retention_hours=settings.ingest_batch_retention_hours,
        ),
        "health_reader": HealthReader(db),
        "hub": create_hub(
            settings.hub_url,
            channel_prefix=settings.hub_channel_prefix,
            queue_max_lines=settings.tail_queue_max_lines,
            publish_queue_max=settings.hub_publish_queue_max,
        ),
        "tails": tail.TailSessions(),
        "ingest_keys": IngestKeys(db),
        "ingest_limiter": TokenBuckets(settings.ingest_rate_limit, 2 * settings.ingest_rate_limit),
        "api_limiter": TokenBuckets(settings.api_rate_limit / 60, settings.api_rate_limit / 6),
        "device_start_limiter": TokenBuckets(settings.device_start_rate_limit / 60, settings.device_start_rate_limit),
        "device_code_limiter": WrongCodeLimiter(settings.device_wrong_code_limit),
        "ingest_limits": Limits(
            max_message_bytes=settings.ingest_max_message_bytes,
            max_attributes_bytes=settings.ingest_max_attributes_bytes,
            max_attribute_depth=settings.ingest_max_attribute_depth,
            max_traceback_bytes=settings.ingest_max_traceback_bytes,
        ),
    }


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Connect the database (migrating when configured), start the writer; undo it all on exit."""
    state = build_state(settings)
    db: DB = state["db"]
    await db.connect()
    native.log_missing(log)
    try:
        if settings.migrate_on_start_enabled:
            await apply_migrations(db)
        await state["hub"].connect()
        try:
            state["writer"].listeners.append(state["hub"].publish_rows)
            await state["writer"].start()
            aggregator = state["health_aggregator"] = HealthAggregator(
                db, enabled=settings.health_aggregation, interval_s=settings.health_flush_seconds,
                apply_sqlite=state["writer"].apply_health,
            )
            await aggregator.start(state["writer"] if db.dialect == "sqlite" else None)
            state["health_reader"].catch_up = aggregator.catch_up
            log.info("database %s ready", hide_password(db.url))
            try:
                async with health_running(state["health_reader"], db, settings):
                    yield state
            finally:
                await aggregator.stop()
                await state["writer"].stop()
        finally:
            await state["hub"].disconnect()
    finally:
        await db.disconnect()


def create_app(settings: Settings | None = None) -> Starlette:
    """The API/ingest application. `settings` defaults to the environment's."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        device.install_log_redaction()  # after the server configured logging
        async with open_resources(settings) as state:
            tune_runtime()
            yield state

    # The OIDC routes need the settings (client id, redirect URI, flow cookie), so they join here.
    app_routes = [*routes, *oidc.routes(settings)]
    return Starlette(routes=app_routes, exception_handlers=exception_handlers, lifespan=lifespan,
                     middleware=[Middleware(NulGuard)])

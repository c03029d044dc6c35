"""Health metrics API under /api/apps/{app_id}/health (docs/health.md).

Same checks as every app route: `api._caller` (auth, rate limit), then `apps.get_app`,
which answers 404 for apps the caller does not own. Data comes from the aggregate tables
only (`server.health_series`, `server.health_status`), never from raw logs.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import apps
from server.api import _caller, json
from server.errors import ApiError
from server.health_range import HealthRange, iso, parse_range
from server.health_rollup import ALL_ROUTES
from server.health_series import (
    MAX_ROUTE_SERIES,
    error_rate_series,
    latency_series,
    list_routes,
    list_services,
    volume_series,
)
from server.health_status import summary
from server.health_store import HealthReader

__all__ = ["routes"]

_WINDOW = re.compile(r"^(\d+)(m|h)?$")
MAX_WINDOW_MINUTES = 1440


async def _app(request: Request) -> tuple[int, HealthReader]:
    principal = await _caller(request)
    app = await apps.get_app(request.state.db, principal.user, request.path_params["app_id"])
    return int(app["id"]), await request.state.health_reader.fresh()


def _services(request: Request) -> list[str]:
    out: list[str] = []
    for raw in request.query_params.getlist("service"):
        out.extend(v.strip() for v in raw.split(",") if v.strip())
    if len(out) > 100:
        raise ApiError(400, "invalid_parameter", "at most 100 services per query", field="service")
    return sorted(set(out))


async def _range_and_services(request: Request) -> tuple[int, HealthReader, HealthRange, list[str]]:
    app_id, reader = await _app(request)
    rng = parse_range(request.query_params, request.state.settings)
    services = _services(request) or [s for s, _ in await list_services(reader, app_id)]
    return app_id, reader, rng, services


def _head(rng: HealthRange) -> dict[str, Any]:
    return {"since": iso(rng.bounds[0]), "until": iso(rng.bounds[-1]), "bucket_seconds": rng.bucket_s, "tz": rng.tz,
            "resolution_seconds": rng.res}


async def health_summary(request: Request) -> Response:
    app_id, reader = await _app(request)
    settings = request.state.settings
    raw = request.query_params.get("window")
    window = settings.health_window_minutes
    if raw:
        match = _WINDOW.match(raw.strip())
        window = int(match.group(1)) * (60 if match.group(2) == "h" else 1) if match else 0
        if not 1 <= window <= MAX_WINDOW_MINUTES:
            raise ApiError(400, "invalid_parameter", "window must be whole minutes or hours from 1m to 24h, e.g. 15m or 1h",
                           field="window")
    return json(await summary(reader, settings, app_id, window, time.time_ns() // 1000))


async def health_volume(request: Request) -> Response:
    app_id, reader, rng, services = await _range_and_services(request)
    return json({**_head(rng), "services": services, **await volume_series(reader, app_id, rng, services)})


async def health_error_rate(request: Request) -> Response:
    app_id, reader, rng, services = await _range_and_services(request)
    return json({**_head(rng), "series": await error_rate_series(reader, app_id, rng, services)})


async def health_latency(request: Request) -> Response:
    app_id, reader, rng, services = await _range_and_services(request)
    by = request.query_params.get("by", "service")
    if by not in ("service", "route"):
        raise ApiError(400, "invalid_parameter", "by must be service or route", field="by")
    if by == "service":
        series = [(s, ALL_ROUTES) for s in services]
    else:
        series = await list_routes(reader, app_id, services) if services else []
        wanted = [r.strip() for raw in request.query_params.getlist("route") for r in raw.split(",") if r.strip()]
        if wanted:
            series = [(s, r) for s, r in series if r in wanted]
    return json({**_head(rng), "by": by, "max_series": MAX_ROUTE_SERIES,
                 "series": await latency_series(reader, app_id, rng, series)})


routes = [
    Route("/api/apps/{app_id}/health", health_summary, methods=["GET"]),
    Route("/api/apps/{app_id}/health/volume", health_volume, methods=["GET"]),
    Route("/api/apps/{app_id}/health/error-rate", health_error_rate, methods=["GET"]),
    Route("/api/apps/{app_id}/health/latency", health_latency, methods=["GET"]),
]

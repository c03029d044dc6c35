"""The JSON API under /api: the caller, personal tokens, apps, keys and logs.

Every app route goes through `apps.get_app`, which answers 404 for apps the caller does
not own. Browser (cookie) writes need the X-CSRF-Token header (see `auth.require_csrf`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import apps
from server.accounts import create_api_token
from server.auth import Principal, require_user
from server.errors import ApiError
from server.logs_query import parse_log_query, run_log_query

__all__ = ["routes"]


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _caller(request: Request) -> Principal:
    principal = await require_user(request)
    limiter = request.state.api_limiter
    wait = limiter.take(("user", principal.user.id))
    if wait:
        raise ApiError(
            429, "rate_limited", "too many API requests (API_RATE_LIMIT per minute)",
            headers={"Retry-After": limiter.retry_after(wait)},
        )
    return principal


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    if b"\\u0000" in raw:  # PostgreSQL's text cannot hold NUL (server/nul_guard.py)
        for name, value in data.items():
            if "\x00" in name or b"\\u0000" in orjson.dumps(value):
                field = name.replace("\x00", "\ufffd")
                raise ApiError(422, "invalid_field", f"{field} must not contain NUL characters", field=field)
    return data


def _key_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "app_id", "environment", "prefix", "created_at", "last_used_at", "revoked_at")}


async def me(request: Request) -> Response:
    p = await _caller(request)
    return json({
        "id": p.user.id, "email": p.user.email, "name": p.user.name, "via": p.via, "csrf_token": p.csrf_token,
    })


async def create_token(request: Request) -> Response:
    p = await _caller(request)
    body = await _body(request)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 64:
        raise ApiError(422, "invalid_field", "name must be a string of at most 64 characters", field="name")
    token, row = await create_api_token(request.state.db, p.user, name)
    return json({**row, "token": token}, 201)


async def list_apps(request: Request) -> Response:
    p = await _caller(request)
    return json({"apps": await apps.list_apps(request.state.db, p.user)})


async def create_app(request: Request) -> Response:
    p = await _caller(request)
    body = await _body(request)
    app, key, key_row = await apps.create_app(
        request.state.db, p.user, body.get("name"), body.get("description"), body.get("environment")
    )
    dsn = request.state.settings.base_url
    return json({"app": app, "api_key": key, "key": _key_out(key_row), "dsn": dsn}, 201)


async def app_detail(request: Request) -> Response:
    p = await _caller(request)
    db, app_id = request.state.db, request.path_params["app_id"]
    if request.method == "GET":
        return json(await apps.get_app(db, p.user, app_id))
    if request.method == "PATCH":
        return json(await apps.update_app(db, p.user, app_id, await _body(request)))
    await apps.delete_app(db, p.user, app_id)
    return Response(status_code=204)


async def keys(request: Request) -> Response:
    p = await _caller(request)
    db, app_id = request.state.db, request.path_params["app_id"]
    if request.method == "GET":
        include = request.query_params.get("include_revoked", "") in ("1", "true")
        return json({"keys": [_key_out(k) for k in await apps.list_keys(db, p.user, app_id, include)]})
    body = await _body(request)
    key, row = await apps.create_key(db, p.user, app_id, body.get("environment"))
    return json({"api_key": key, "key": _key_out(row), "dsn": request.state.settings.base_url}, 201)


async def regenerate_key(request: Request) -> Response:
    p = await _caller(request)
    key, row = await apps.regenerate_key(
        request.state.db, p.user, request.path_params["app_id"], request.path_params["key_id"]
    )
    return json({"api_key": key, "key": _key_out(row), "dsn": request.state.settings.base_url}, 201)


async def revoke_key(request: Request) -> Response:
    p = await _caller(request)
    row = await apps.revoke_key(request.state.db, p.user, request.path_params["app_id"], request.path_params["key_id"])
    return json(_key_out(row))


async def logs(request: Request) -> Response:
    p = await _caller(request)
    db, settings = request.state.db, request.state.settings
    app = await apps.get_app(db, p.user, request.path_params["app_id"])
    query = parse_log_query(request.query_params, settings.query_default_limit, settings.query_max_limit)
    return json(await run_log_query(db, app["id"], query))


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/tokens", create_token, methods=["POST"]),
    Route("/api/apps", list_apps, methods=["GET"]),
    Route("/api/apps", create_app, methods=["POST"]),
    Route("/api/apps/{app_id}", app_detail, methods=["GET", "PATCH", "DELETE"]),
    Route("/api/apps/{app_id}/keys", keys, methods=["GET", "POST"]),
    Route("/api/apps/{app_id}/keys/{key_id}/regenerate", regenerate_key, methods=["POST"]),
    Route("/api/apps/{app_id}/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/api/apps/{app_id}/logs", logs, methods=["GET"]),
]

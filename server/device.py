"""CLI device authorization (`sentry-logger init`), after RFC 8628; see docs/device-flow.md.

The terminal starts a request (`start`), the signed-in user approves or denies it on the
dashboard page /sdk/link (`lookup`, `decide`: the page calls these in-process, other
clients use the HTTP routes below), and the terminal polls (`poll`) until it gets the API
key, exactly once. Creating the app (or reusing the user's app of that name) and the key
goes through `server.apps`, with its ownership checks.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import apps
from server._device_codes import (
    WrongCodeLimiter,
    format_user_code,
    new_device_code,
    new_user_code,
    normalise_user_code,
    open_sealed,
    seal,
    seal_public_key,
)
from server.accounts import User
from server.api import _body, json
from server.auth import require_user
from server.db import DB
from server.errors import ApiError
from server.security import hash_secret, now_s
from server.settings import Settings

__all__ = ["LINK_PATH", "decide", "install_log_redaction", "lookup", "poll", "routes", "start"]

log = logging.getLogger("server.device")
LINK_PATH = "/sdk/link"
SLOW_DOWN_STEP_S = 5  # RFC 8628 3.5: each slow_down adds 5 seconds to the interval
_POLL_SLACK_MS = 250  # clock slack between server processes; a client that waits `interval` is never early
_KEEP_EXPIRED_S = 86_400  # late polls still get expired_token rather than "unknown" for a day
_OPEN = ("pending", "approving", "approved")
_COLUMNS = (
    "id, seal_public, app_name, environment, requested_from, status, created_at, expires_at, "
    "interval_s, last_poll_ms, app_id, api_key_id, sealed_key"
)


def _hash_user_code(code: str) -> str:
    return hash_secret("user-code:" + normalise_user_code(code))


async def _expire(db: DB, now: int) -> None:
    """Close requests past their lifetime; keys approved but never fetched are revoked."""
    await db.execute(
        "UPDATE api_keys SET revoked_at = :now WHERE revoked_at IS NULL AND id IN (SELECT api_key_id "
        "FROM device_authorizations WHERE status = 'approved' AND expires_at <= :now AND api_key_id IS NOT NULL)",
        {"now": now},
    )
    await db.execute(
        "UPDATE device_authorizations SET status = 'expired', sealed_key = NULL "
        "WHERE status IN ('pending', 'approving', 'approved') AND expires_at <= :now",
        {"now": now},
    )
    await db.execute("DELETE FROM device_authorizations WHERE expires_at <= :old", {"old": now - _KEEP_EXPIRED_S})


async def start(db: DB, settings: Settings, app_name: Any, environment: Any, address: str) -> dict[str, Any]:
    """A new request for `app_name` in `environment`: the device code goes to the terminal only."""
    if not isinstance(app_name, str) or not app_name.strip():
        raise ApiError(422, "invalid_field", "app_name is required", field="app_name")
    name = app_name.strip()
    if len(name) > apps.NAME_MAX:
        raise ApiError(422, "invalid_field", f"app_name is {len(name)} characters; the limit is {apps.NAME_MAX}",
                       field="app_name")
    env = apps.clean_environment(environment)
    now = now_s()
    await _expire(db, now)
    device_code = new_device_code()
    user_code = new_user_code()
    for _ in range(5):  # 19^8 codes: a clash with a live request is rare; never hand out a live one twice
        clash = await db.fetch_val(
            "SELECT 1 FROM device_authorizations WHERE user_code_hash = :h AND expires_at > :now",
            {"h": _hash_user_code(user_code), "now": now},
        )
        if clash is None:
            break
        user_code = new_user_code()
    lifetime, interval = settings.device_code_lifetime_seconds, settings.device_poll_interval_seconds
    request_id = await db.execute(
        "INSERT INTO device_authorizations (device_code_hash, user_code_hash, seal_public, app_name, environment, "
        "requested_from, created_at, expires_at, interval_s) VALUES (:dh, :uh, :pub, :name, :env, :addr, :now, "
        ":expires, :interval) RETURNING id",
        {"dh": hash_secret(device_code), "uh": _hash_user_code(user_code), "pub": seal_public_key(device_code),
         "name": name, "env": env, "addr": address[:64], "now": now, "expires": now + lifetime, "interval": interval},
    )
    log.info("device authorization %s started for app %r (%s) from %s", request_id, name, env, address)
    link = settings.base_url + LINK_PATH
    return {
        "device_code": device_code, "user_code": user_code, "verification_uri": link,
        "verification_uri_complete": f"{link}?code={user_code}", "expires_in": lifetime, "interval": interval,
    }


async def _pending(db: DB, limiter: WrongCodeLimiter, user: User, user_code: Any, address: str) -> dict[str, Any]:
    """The open request with this user code, counting wrong codes per user and per address."""
    keys = (("user", user.id), ("addr", address))
    wait = limiter.blocked_for(*keys)
    if wait:
        raise ApiError(
            429, "too_many_attempts",
            f"too many wrong codes; try again in {max(1, round(wait / 60))} minute(s)",
            headers={"Retry-After": limiter.retry_after(wait)},
        )
    code = normalise_user_code(user_code) if isinstance(user_code, str) else ""
    if not code:
        raise ApiError(422, "invalid_field", "user_code is required (the code your terminal shows)", field="user_code")
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM device_authorizations WHERE user_code_hash = :h ORDER BY id DESC LIMIT 1",
        {"h": _hash_user_code(code)},
    )
    if row is None or row["status"] == "expired" or int(row["expires_at"]) <= now_s():
        limiter.record_wrong(*keys)
        raise ApiError(404, "invalid_user_code",
                       "no sign-in request has this code: check it, or it expired (run `sentry-logger init` again)")
    if row["status"] != "pending":
        raise ApiError(409, "code_used", "this code was already used; run `sentry-logger init` again for a new one")
    return row


async def lookup(db: DB, limiter: WrongCodeLimiter, user: User, user_code: Any, address: str) -> dict[str, Any]:
    """What the terminal asked for, to show before the user decides. Changes nothing."""
    row = await _pending(db, limiter, user, user_code, address)
    existing = await _own_app(db, user, row["app_name"])
    return {
        "user_code": format_user_code(user_code), "app_name": row["app_name"], "environment": row["environment"],
        "requested_from": row["requested_from"], "created_at": row["created_at"], "expires_at": row["expires_at"],
        "existing_app": existing is not None,
    }


async def _own_app(db: DB, user: User, name: str) -> dict[str, Any] | None:
    return next((a for a in await apps.list_apps(db, user) if a["name"].lower() == name.lower()), None)


async def decide(
    db: DB, limiter: WrongCodeLimiter, user: User, user_code: Any, address: str, *, approve: bool
) -> dict[str, Any]:
    """Approve (app + new key, sealed for the terminal) or deny the request; each code works once."""
    row = await _pending(db, limiter, user, user_code, address)
    claimed = await db.execute(
        "UPDATE device_authorizations SET status = :status, user_id = :user, decided_at = :now "
        "WHERE id = :id AND status = 'pending' AND expires_at > :now RETURNING id",
        {"status": "approving" if approve else "denied", "user": user.id, "now": now_s(), "id": row["id"]},
    )
    if claimed is None:
        raise ApiError(409, "code_used", "this code was already used; run `sentry-logger init` again for a new one")
    if not approve:
        log.info("device authorization %s denied by user %s", row["id"], user.id)
        return {"status": "denied", "app_name": row["app_name"], "environment": row["environment"]}
    try:
        app = await _own_app(db, user, row["app_name"])
        created = app is None
        if app is None:
            app, key, key_row = await apps.create_app(
                db, user, row["app_name"], "Created by sentry-logger init", row["environment"])
        else:
            key, key_row = await apps.create_key(db, user, app["id"], row["environment"])
    except BaseException:
        await db.execute(
            "UPDATE device_authorizations SET status = 'pending', user_id = NULL, decided_at = NULL "
            "WHERE id = :id AND status = 'approving'", {"id": row["id"]})
        raise
    done = await db.execute(
        "UPDATE device_authorizations SET status = 'approved', app_id = :app, api_key_id = :key, app_name = :name, "
        "sealed_key = :sealed WHERE id = :id AND status = 'approving' RETURNING id",
        {"app": app["id"], "key": key_row["id"], "name": app["name"], "sealed": seal(key, row["seal_public"]),
         "id": row["id"]},
    )
    if done is None:  # expired while the key was being made: nobody can fetch it, so it must not live
        await apps.revoke_key(db, user, app["id"], key_row["id"])
        raise ApiError(404, "invalid_user_code", "this sign-in request expired; run `sentry-logger init` again")
    log.info("device authorization %s approved by user %s: app %s, key %s", row["id"], user.id, app["id"],
             key_row["prefix"])
    return {"status": "approved", "app": {"id": app["id"], "name": app["name"]}, "app_created": created,
            "environment": row["environment"], "key_prefix": key_row["prefix"]}


def _rfc_error(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(400, code, message, extra=extra)


async def poll(db: DB, settings: Settings, device_code: Any) -> dict[str, Any]:
    """The key, app and DSN exactly once after approval; otherwise an RFC 8628 error (HTTP 400)."""
    if not isinstance(device_code, str) or not device_code:
        raise _rfc_error("invalid_request", "device_code is required")
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM device_authorizations WHERE device_code_hash = :h", {"h": hash_secret(device_code)})
    if row is None:
        raise _rfc_error("invalid_grant", "unknown device_code; run `sentry-logger init` again")
    now, status = now_s(), row["status"]
    if status in _OPEN and int(row["expires_at"]) <= now:
        await _expire(db, now)
        status = "expired"
    if status == "expired":
        raise _rfc_error("expired_token", "the sign-in request expired before it was approved; run `sentry-logger init` again")
    if status == "delivered":
        raise _rfc_error("expired_token", "this device code already fetched its API key (it works once); "
                         "run `sentry-logger init` again for a new key")
    if status == "denied":
        raise _rfc_error("access_denied", "the sign-in request was denied in the browser")
    now_ms, interval = int(time.time() * 1000), int(row["interval_s"])
    on_time = await db.execute(
        "UPDATE device_authorizations SET last_poll_ms = :now WHERE id = :id "
        "AND (last_poll_ms IS NULL OR last_poll_ms <= :cutoff) RETURNING id",
        {"now": now_ms, "id": row["id"], "cutoff": now_ms - interval * 1000 + _POLL_SLACK_MS},
    )
    if on_time is None:
        await db.execute(
            "UPDATE device_authorizations SET interval_s = interval_s + :step, last_poll_ms = :now WHERE id = :id",
            {"step": SLOW_DOWN_STEP_S, "now": now_ms, "id": row["id"]})
        slower = interval + SLOW_DOWN_STEP_S
        raise _rfc_error("slow_down", f"polling faster than every {interval} s; wait {slower} s between polls",
                         interval=slower)
    if status == "approved":
        delivered = await db.execute(
            "UPDATE device_authorizations SET status = 'delivered', sealed_key = NULL, delivered_at = :now "
            "WHERE id = :id AND status = 'approved' RETURNING id", {"now": now, "id": row["id"]})
        if delivered is not None and row["sealed_key"]:
            try:
                api_key = open_sealed(row["sealed_key"], device_code)
            except InvalidTag:  # cannot happen for the code whose hash matched; never hand out anything else
                raise _rfc_error("invalid_grant", "this device code cannot open its key") from None
            log.info("device authorization %s: key delivered", row["id"])
            return {"api_key": api_key, "dsn": settings.base_url, "environment": row["environment"],
                    "app": {"id": row["app_id"], "name": row["app_name"]}}
        raise _rfc_error("expired_token", "this device code already fetched its API key (it works once)")
    raise _rfc_error("authorization_pending", "waiting for approval in the browser", interval=interval)


# HTTP routes ------------------------------------------------------------------------------------


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def start_route(request: Request) -> Response:
    limiter = request.state.device_start_limiter
    wait = limiter.take(("addr", _address(request)))
    if wait:
        raise ApiError(429, "rate_limited", "too many sign-in requests from this address (DEVICE_START_RATE_LIMIT)",
                       headers={"Retry-After": limiter.retry_after(wait)})
    body = await _body(request)
    out = await start(request.state.db, request.state.settings, body.get("app_name"), body.get("environment"),
                      _address(request))
    return json(out, 200)


async def poll_route(request: Request) -> Response:
    # POST (code in the body) is preferred: query strings end up in proxies' access logs.
    if request.method == "POST":
        device_code = (await _body(request)).get("device_code")
    else:
        device_code = request.query_params.get("device_code")
    out = await poll(request.state.db, request.state.settings, device_code)
    return json(out)


async def _session_user(request: Request) -> User:
    principal = await require_user(request)  # 401 without a session, 403 on a write without CSRF
    if principal.via != "session":
        raise ApiError(403, "session_required", "approve terminal sign-ins from the dashboard, signed in (not with a token)")
    return principal.user


async def lookup_route(request: Request) -> Response:
    user = await _session_user(request)
    return json(await lookup(request.state.db, request.state.device_code_limiter, user,
                             request.query_params.get("user_code"), _address(request)))


async def decide_route(request: Request) -> Response:
    user = await _session_user(request)
    body = await _body(request)
    approve = request.url.path.endswith("/complete")
    return json(await decide(request.state.db, request.state.device_code_limiter, user, body.get("user_code"),
                             _address(request), approve=approve))


_SECRET_IN_URL = re.compile(r"((?:device_code|user_code|code)=)[^&\s\"]+")


class _AccessLogRedaction(logging.Filter):
    """Hides device and user codes in access log lines (uvicorn logs paths with their query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_SECRET_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Idempotent: add the redaction filter to uvicorn's access logger."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _AccessLogRedaction) for f in access.filters):
        access.addFilter(_AccessLogRedaction())


routes = [
    Route("/sdk/device/start", start_route, methods=["POST"]),
    Route("/sdk/device/poll", poll_route, methods=["GET", "POST"]),
    Route("/sdk/device/lookup", lookup_route, methods=["GET"]),
    Route("/sdk/device/complete", decide_route, methods=["POST"]),
    Route("/sdk/device/deny", decide_route, methods=["POST"]),
]

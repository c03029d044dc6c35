"""The live tail over WebSocket: `/ws/tail?app_id=N` (protocol in docs/live-tail.md), and
`POST /api/tail-tokens` for clients that cannot send headers (browsers).

Who may tail: the owner of the app, by session cookie (same-origin only), personal token
(`Authorization: Bearer slt_...`) or a short-lived tail token (`?token=`). Never an ingest key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import orjson
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from server.accounts import User
from server.apps import get_app
from server.auth import authenticate, require_user
from server.db import as_bigint
from server.errors import ApiError
from server.hub import HubClosed, Skipped
from server.hub.filters import FILTER_KEYS, LogFilter
from server.hub.follow import LogFollower, follow_logs

__all__ = ["TailClose", "TailSessions", "routes"]

_SALT = "sentry-logger-tail-token"


class TailClose(Exception):
    """Ends a tail with a WebSocket close code and a reason the client can show."""

    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


class TailSessions:
    """Open tails per user in this process (the TAIL_MAX_PER_USER limit) and tail counters."""

    def __init__(self) -> None:
        self.open: collections.Counter[int] = collections.Counter()
        self.closed: collections.Counter[str] = collections.Counter()

    def metrics(self) -> dict[str, Any]:
        return {"open_tails": sum(self.open.values()), "tails_closed": dict(self.closed)}


def _serializer(request: Request | WebSocket) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.state.settings.secret_key, salt=_SALT)


async def tail_token(request: Request) -> Response:
    principal = await require_user(request)
    limiter = request.state.api_limiter
    wait = limiter.take(("user", principal.user.id))
    if wait:
        raise ApiError(429, "rate_limited", "too many API requests (API_RATE_LIMIT per minute)",
                       headers={"Retry-After": limiter.retry_after(wait)})
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("app_id"), int):
        raise ApiError(400, "invalid_body", "send a JSON object with the integer app_id", field="app_id")
    app = await get_app(request.state.db, principal.user, body["app_id"])
    settings = request.state.settings
    token = _serializer(request).dumps({"u": principal.user.id, "a": app["id"]})
    ws_base = "ws" + settings.base_url[4:] if settings.base_url.startswith("http") else settings.base_url
    body = {"token": token, "expires_in": settings.tail_token_ttl_seconds,
            "url": f"{ws_base}/ws/tail?app_id={app['id']}&token={token}"}
    return Response(orjson.dumps(body), status_code=201, media_type="application/json")


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser: a cross-site page cannot omit it
    allowed = {ws.headers.get("host", ""), urlsplit(ws.state.settings.base_url).netloc}
    return urlsplit(origin).netloc in allowed


async def _caller(ws: WebSocket, app_id: int) -> User:
    token = ws.query_params.get("token")
    if token:
        try:
            claims = _serializer(ws).loads(token, max_age=ws.state.settings.tail_token_ttl_seconds)
        except BadSignature:
            raise TailClose(4401, "invalid_tail_token", "the tail token is invalid or expired; get a new one") from None
        if claims.get("a") != app_id:
            raise TailClose(4403, "wrong_app", "this tail token is for another app")
        row = await ws.state.db.fetch_one(
            "SELECT u.id, u.email, u.name, u.issuer, u.sub FROM users u WHERE u.id = :id", {"id": claims.get("u")}
        )
        if row is None:
            raise TailClose(4401, "invalid_tail_token", "the tail token's user no longer exists")
        return User.from_row(row)
    if ws.headers.get("authorization", "").lower().startswith(("bearer sk_", "bearer sk-")):
        raise TailClose(4401, "ingest_key_refused", "ingest API keys cannot open a tail; use a personal token")
    principal = await authenticate(ws)
    if principal is None:
        raise TailClose(4401, "unauthenticated",
                        "sign in, send 'Authorization: Bearer slt_...', or pass ?token= from the tail-token route")
    if principal.via == "session" and not _same_origin(ws):
        raise TailClose(4403, "cross_origin", "cookie-authenticated tails must come from this server's origin")
    return principal.user


def _parameters(ws: WebSocket) -> tuple[int, int | None, LogFilter]:
    params = ws.query_params
    app_id = as_bigint(params.get("app_id", ""))
    after_raw = params.get("after_id")
    after_id = as_bigint(after_raw) if after_raw not in (None, "") else None
    if app_id is None or (after_raw not in (None, "") and after_id is None):
        raise TailClose(4400, "invalid_parameter", "app_id (required) and after_id must be integers of at most 64 bits")
    filters = {k: params.getlist(k) for k in params if k in FILTER_KEYS}
    try:
        return app_id, after_id, LogFilter.parse(filters)
    except ApiError as exc:
        raise TailClose(4400, exc.code, exc.message) from None


class TailSession:
    """One open tail: a sender (lines, markers, heartbeats) and a receiver (filters, pings)."""

    def __init__(self, ws: WebSocket, follower: LogFollower) -> None:
        self.ws, self.follower = ws, follower
        self.settings = ws.state.settings
        self._lock = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            try:
                with anyio.fail_after(self.settings.tail_send_timeout_seconds):
                    await self.ws.send_text(frame.decode())
            except TimeoutError:
                raise TailClose(4008, "client_too_slow", "the client did not read for TAIL_SEND_TIMEOUT_SECONDS") from None

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.send(orjson.dumps(data))

    async def sender(self) -> None:
        follower = self.follower
        while True:
            event = await follower.next(timeout=self.settings.tail_heartbeat_seconds)
            if event is None:
                await self.send_json({"type": "heartbeat", "cursor": follower.position, "time": time.time()})
            elif isinstance(event, Skipped):
                await self.send_json({"type": "skipped", "reason": "slow_consumer", "count": event.count,
                                      "after_id": event.after_id, "through_id": event.through_id,
                                      "cursor": follower.position})
            else:
                head = b'{"type":"logs","source":"%s","cursor":%d,"logs":[' % (event.source.encode(), follower.position)
                await self.send(head + b",".join(event.raw) + b"]}")

    async def receiver(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                data = orjson.loads(message.get("text") or message.get("bytes") or b"")
                kind = data.get("type") if isinstance(data, dict) else None
            except orjson.JSONDecodeError:
                kind = None
            if kind == "ping":
                await self.send_json({"type": "pong", "cursor": self.follower.position})
            elif kind == "filter":
                try:
                    new = LogFilter.parse(data.get("filters") or {})
                except ApiError as exc:
                    await self.send_json({"type": "error", "error": exc.code, "message": exc.message, "field": exc.field})
                    continue
                self.follower.set_filter(new)
                await self.send_json({"type": "filters", "filters": new.describe(), "cursor": self.follower.position})
            else:
                await self.send_json({"type": "error", "error": "invalid_message",
                                      "message": "send a JSON object with type 'filter' or 'ping'"})

    async def run(self) -> TailClose | None:
        """Serve until the client leaves (None) or the tail must close (the reason)."""
        limit = self.settings.tail_max_duration_seconds
        ended: list[TailClose] = []

        async def until_done(part: Callable[[], Awaitable[None]], group: anyio.abc.TaskGroup) -> None:
            try:
                await part()
            except TailClose as close:
                ended.append(close)
            except HubClosed:
                ended.append(TailClose(1012, "server_restart", "the server is restarting; resume with after_id"))
            except Exception:  # noqa: BLE001, S110 - the client's connection failed: it left
                pass
            group.cancel_scope.cancel()  # the other part stops too

        with anyio.move_on_after(limit or math.inf) as timer:
            async with anyio.create_task_group() as group:
                group.start_soon(until_done, self.sender, group)
                group.start_soon(until_done, self.receiver, group)
        if timer.cancelled_caught and not ended:
            return TailClose(4408, "max_duration", f"tails last at most {limit:g} s; resume with after_id")
        return ended[0] if ended else None


async def _close(ws: WebSocket, close: TailClose, cursor: int | None = None) -> None:
    with contextlib.suppress(Exception):
        body = {"type": "closing", "code": close.code, "error": close.error, "message": close.message}
        if cursor is not None:
            body["cursor"] = cursor
        with anyio.fail_after(2):
            await ws.send_text(orjson.dumps(body).decode())
    with contextlib.suppress(Exception):
        with anyio.fail_after(2):
            await ws.close(close.code, close.message[:120])


async def tail(ws: WebSocket) -> None:
    state = ws.state
    sessions: TailSessions = state.tails
    try:
        app_id, after_id, log_filter = _parameters(ws)
        user = await _caller(ws, app_id)
        try:
            await get_app(state.db, user, app_id)
        except ApiError:
            raise TailClose(4404, "app_not_found", f"no app with id {app_id}") from None
        if sessions.open[user.id] >= state.settings.tail_max_per_user:
            raise TailClose(4429, "too_many_tails", f"at most {state.settings.tail_max_per_user} tails per user; close one")
    except TailClose as refused:
        sessions.closed[refused.error] += 1
        await ws.accept()
        await _close(ws, refused)
        return
    sessions.open[user.id] += 1
    try:
        await ws.accept()
        async with follow_logs(state.db, state.hub, app_id, log_filter, after_id,
                               max_lines=state.settings.tail_queue_max_lines) as follower:
            session = TailSession(ws, follower)
            await session.send_json({
                "type": "ready", "app_id": app_id, "after_id": after_id, "cursor": follower.position,
                "filters": log_filter.describe(), "heartbeat_seconds": state.settings.tail_heartbeat_seconds,
                "max_duration_seconds": state.settings.tail_max_duration_seconds,
            })
            ended = await session.run()
            sessions.closed[ended.error if ended else "client_left"] += 1
            if ended is not None:
                await _close(ws, ended, follower.position)
    finally:
        sessions.open[user.id] -= 1
        if sessions.open[user.id] <= 0:
            del sessions.open[user.id]


routes = [
    WebSocketRoute("/ws/tail", tail),
    Route("/api/tail-tokens", tail_token, methods=["POST"]),
]

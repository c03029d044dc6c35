"""Who is calling: a dashboard session cookie or a personal API token; CSRF for browser writes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request

from server.accounts import User, session_user, token_user
from server.errors import ApiError
from server.security import same_secret

__all__ = ["SESSION_COOKIE", "Principal", "authenticate", "require_csrf", "require_user"]

SESSION_COOKIE = "sl_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user: User
    via: str  # "session" or "token"
    csrf_token: str | None = None
    session_id: str | None = None


async def authenticate(conn: HTTPConnection) -> Principal | None:
    """The caller, from `Authorization: Bearer slt_...` or the session cookie; None if neither is valid."""
    db = conn.state.db
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        user = await token_user(db, token) if token.startswith("slt_") else None
        return None if user is None else Principal(user, "token")
    session_id = conn.cookies.get(SESSION_COOKIE)
    if session_id:
        found = await session_user(db, session_id)
        if found is not None:
            return Principal(found[0], "session", csrf_token=found[1], session_id=session_id)
    return None


async def require_user(request: Request) -> Principal:
    """The caller, or 401. Browser (cookie) writes must also carry the session's CSRF token."""
    principal = await authenticate(request)
    if principal is None:
        raise ApiError(401, "unauthenticated", "sign in, or send a personal API token as 'Authorization: Bearer slt_...'")
    if request.method not in _SAFE_METHODS:
        require_csrf(request, principal)
    return principal


def require_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated writes need the X-CSRF-Token header (from GET /api/me) to match."""
    if principal.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or principal.csrf_token is None or not same_secret(sent, principal.csrf_token):
        raise ApiError(403, "csrf_failed", "missing or wrong X-CSRF-Token header; get the token from GET /api/me")

"""Sign-in plumbing shared by every provider: the session cookie, the local developer
sign-in, sign-out, safe `next` redirects and the plain error page for failed sign-ins.
"""

from __future__ import annotations

import html
import ipaddress
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from server.accounts import LOCAL_DEV_EMAIL, LOCAL_ISSUER, User, create_session, delete_session, upsert_user
from server.auth import SESSION_COOKIE, authenticate

__all__ = ["error_page", "routes", "safe_next", "start_session"]


def safe_next(value: str | None) -> str:
    """Only same-site relative paths: `/x` yes, `//evil.com` and `https://evil.com` no."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def error_page(title: str, detail: str, status: int = 400) -> HTMLResponse:
    """A readable page for a failed sign-in (never a stack trace, never a 500)."""
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}
h1{{font-size:1.4rem}}a{{color:#4f46e5}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p><p><a href="/auth/signin">Back to sign-in</a></p></body></html>"""
    return HTMLResponse(body, status_code=status)


async def start_session(request: Request, user: User, next_url: str) -> Response:
    """Create a server-side session for `user` and redirect, setting the session cookie."""
    settings = request.state.settings
    session_id = await create_session(request.state.db, user, settings.session_lifetime_hours)
    response = RedirectResponse(safe_next(next_url), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=settings.session_lifetime_hours * 3600, path="/",
        httponly=True, samesite="lax", secure=settings.base_url.startswith("https://"),
    )
    return response


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "testserver"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_login_refusal(request: Request) -> str | None:
    """Why local sign-in may not be used here, or None when it may."""
    settings = request.state.settings
    if not settings.local_login_enabled:
        return "Local developer sign-in is turned off on this server (LOCAL_LOGIN)."
    if settings.local_login_allow_remote:
        return None
    server = request.scope.get("server") or ("", 0)
    if not _is_loopback(settings.host) or (server[0] and not _is_loopback(str(server[0]))):
        return (
            "Local developer sign-in only works when the server listens on a loopback address "
            "(127.0.0.1, localhost). Set LOCAL_LOGIN_ALLOW_REMOTE=true to allow it anyway."
        )
    return None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    parts = urlsplit(origin)
    allowed = {urlsplit(request.state.settings.base_url).netloc, request.headers.get("host", "")}
    return parts.netloc in allowed


async def local_login(request: Request) -> Response:
    refusal = local_login_refusal(request)
    if refusal:
        return error_page("Local sign-in unavailable", refusal, 403)
    if not _same_origin(request):
        return error_page("Sign-in refused", "The sign-in request did not come from this site's own page.", 403)
    form = await request.form()
    user = await upsert_user(request.state.db, issuer=LOCAL_ISSUER, sub="developer", email=LOCAL_DEV_EMAIL, name="Local developer")
    next_value = form.get("next")
    return await start_session(request, user, next_value if isinstance(next_value, str) else "/")


async def logout(request: Request) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        if not _same_origin(request):
            return error_page("Sign-out refused", "The sign-out request did not come from this site's own page.", 403)
        await delete_session(request.state.db, session_id)
    response = RedirectResponse("/auth/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def signin_page(request: Request) -> Response:
    """The server's own sign-in page (the dashboard has its own; this one works without it)."""
    settings = request.state.settings
    next_url = html.escape(safe_next(request.query_params.get("next")))
    if await authenticate(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    buttons = []
    if settings.oidc_enabled:
        oidc_next = html.escape(quote(safe_next(request.query_params.get("next"))))  # one query parameter, even with ?&
        buttons.append(
            f'<a class="btn" href="/auth/oidc/login?next={oidc_next}">'
            f"Sign in with {html.escape(settings.oidc_provider_name)}</a>"
        )
    local_refusal = local_login_refusal(request) if settings.local_login_enabled else None
    if local_refusal:  # say why up front rather than offer a button that cannot work
        buttons.append(f"<p>{html.escape(local_refusal)}</p>")
    elif settings.local_login_enabled:
        buttons.append(
            f'<form method="post" action="/auth/local"><input type="hidden" name="next" value="{next_url}">'
            '<button class="btn" type="submit">Continue as local developer</button></form>'
        )
    if not buttons:
        buttons.append("<p>No sign-in method is configured: set OIDC_CLIENT_ID (see docs/configuration.md).</p>")
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Sign in · sentry-logger</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:6rem auto;padding:0 1rem;color:#1f2937}}
.btn{{display:block;width:100%;box-sizing:border-box;margin:.5rem 0;padding:.7rem;border-radius:.5rem;border:1px solid #d1d5db;
background:#fff;font-size:1rem;text-align:center;text-decoration:none;color:#111827;cursor:pointer}}</style></head>
<body><h1>sentry-logger</h1>{''.join(buttons)}</body></html>"""
    return HTMLResponse(body)


routes = [
    Route("/auth/signin", signin_page, methods=["GET"]),
    Route("/auth/local", local_login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
]

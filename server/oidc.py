"""Sign in with Google, or any OpenID Connect provider, through Authlib's Starlette client.

The provider is found through its discovery document (OIDC_DISCOVERY_URL). The flow is the
authorization-code flow with PKCE (S256) and a nonce; Authlib keeps state, nonce and code
verifier in a short-lived signed cookie (`sl_oidc`) that only the `/auth/oidc` routes see.
A verified ID token becomes a user (identity: issuer + `sub`) and a server-side session
(`server.signin.start_session`). Every failure renders a plain page with a 4xx or 502
status; the provider's codes and tokens never appear in a page or a log line.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from server.accounts import upsert_user
from server.settings import Settings
from server.signin import error_page, safe_next, start_session

__all__ = ["FLOW_COOKIE", "OIDCSignIn", "SignInFailed", "routes"]

log = logging.getLogger("server.oidc")

FLOW_COOKIE = "sl_oidc"
# Time allowed between leaving for the provider and coming back (slow 2FA included).
FLOW_MAX_AGE_S = 15 * 60
# The discovery document is re-read after this long, so a provider's moved endpoints are picked up.
DISCOVERY_MAX_AGE_S = 24 * 3600
_NEXT_KEY = "next"
_REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def _http_client_modules() -> list[Any]:
    # Authlib's httpx integration talks through `httpx2` when it is installed and falls back
    # to `httpx`; network errors come from whichever it picked, so catch both.
    modules: list[Any] = [httpx]
    try:
        modules.append(importlib.import_module("httpx2"))
    except ImportError:
        pass
    return modules


_HTTP_ERRORS: tuple[type[Exception], ...] = tuple(m.HTTPError for m in _http_client_modules())
_HTTP_STATUS_ERRORS: tuple[type[Exception], ...] = tuple(m.HTTPStatusError for m in _http_client_modules())
# The provider could not be reached, or answered something that is not the expected JSON.
_PROVIDER_IO_ERRORS: tuple[type[Exception], ...] = (*_HTTP_ERRORS, ValueError)


class SignInFailed(Exception):
    """A sign-in that must stop with a page for the user: title, one clear sentence, status."""

    def __init__(self, title: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.title, self.detail, self.status = title, detail, status

    def page(self) -> Response:
        return error_page(self.title, self.detail, self.status)


class OIDCSignIn:
    """The `/auth/oidc/login` and `/auth/oidc/callback` endpoints for one configured provider."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.provider = settings.oidc_provider_name or "the sign-in provider"
        self.redirect_uri = f"{settings.base_url}/auth/oidc/callback"
        self.client: StarletteOAuth2App | None = None
        if settings.oidc_enabled:
            oauth = OAuth()
            self.client = oauth.register(
                "oidc",
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret or None,
                server_metadata_url=settings.oidc_discovery_url,
                client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256", "timeout": 10.0},
            )

    async def login(self, request: Request) -> Response:
        """Remember `next`, then send the browser to the provider's authorization endpoint."""
        try:
            client = self._configured()
            await self._load_metadata(client)
            request.session[_NEXT_KEY] = safe_next(request.query_params.get("next"))
            extra: dict[str, str] = {}
            if self.settings.oidc_allowed_domain:
                extra["hd"] = self.settings.oidc_allowed_domain  # Google: preselect the domain's accounts
            response: Response = await client.authorize_redirect(request, self.redirect_uri, **extra)
            return response
        except SignInFailed as failed:
            log.warning("OIDC sign-in could not start: %s", failed.detail)
            return failed.page()

    async def callback(self, request: Request) -> Response:
        """Check the provider's answer and the ID token, then start a session for that user."""
        next_url = request.session.get(_NEXT_KEY, "/")
        try:
            claims = await self._verified_claims(request)
        except SignInFailed as failed:
            log.warning("OIDC sign-in failed: %s", failed.detail)
            return failed.page()
        finally:
            request.session.clear()  # one attempt per flow cookie; SessionMiddleware then deletes it
        user = await upsert_user(
            request.state.db,
            issuer=str(claims["iss"]),
            sub=str(claims["sub"]),
            email=str(claims["email"]),
            name=str(claims.get("name") or ""),
        )
        return await start_session(request, user, next_url if isinstance(next_url, str) else "/")

    def _configured(self) -> StarletteOAuth2App:
        if self.client is None:
            raise SignInFailed(
                "Sign-in unavailable", "Single sign-on is not configured on this server (OIDC_CLIENT_ID is empty).", 404
            )
        return self.client

    async def _load_metadata(self, client: StarletteOAuth2App) -> dict[str, Any]:
        loaded_at = client.server_metadata.get("_loaded_at")
        if loaded_at is not None and time.time() - float(loaded_at) > DISCOVERY_MAX_AGE_S:
            client.server_metadata.clear()
        try:
            metadata: dict[str, Any] = await client.load_server_metadata()
        except _PROVIDER_IO_ERRORS as exc:
            raise self._unreachable(exc) from None
        missing = [key for key in _REQUIRED_METADATA if not metadata.get(key)]
        if missing:
            client.server_metadata.clear()  # read it again next time: the provider may get fixed
            raise SignInFailed(
                "Sign-in provider misconfigured",
                f"The discovery document at OIDC_DISCOVERY_URL lacks {', '.join(missing)}, "
                f"so sign-in with {self.provider} cannot work.",
                502,
            )
        return metadata

    def _unreachable(self, exc: Exception) -> SignInFailed:
        if isinstance(exc, _HTTP_STATUS_ERRORS):
            reason = f"it answered HTTP {exc.response.status_code}"  # type: ignore[attr-defined]
        elif isinstance(exc, _HTTP_ERRORS):
            reason = f"it could not be reached ({type(exc).__name__})"
        else:
            reason = "its answer was not valid JSON"
        return SignInFailed(
            "Sign-in provider unavailable",
            f"Sign-in with {self.provider} failed because {reason}. Please try again in a moment.",
            502,
        )

    async def _verified_claims(self, request: Request) -> dict[str, Any]:
        client = self._configured()
        error = request.query_params.get("error")
        if error == "access_denied":
            raise SignInFailed(
                "Sign-in cancelled",
                f"{self.provider} reported that access was denied, so you were not signed in. "
                "Nothing was changed; you can try again.",
                403,
            )
        if error:
            raise SignInFailed("Sign-in refused", f"{self.provider} refused the sign-in (error: {error[:64]}).", 400)
        await self._load_metadata(client)
        try:
            token = await client.authorize_access_token(request)
        except MismatchingStateError:
            raise SignInFailed(
                "Sign-in expired",
                "This sign-in response does not match a sign-in started in this browser (it may have expired "
                "or been opened elsewhere). Please start again.",
                400,
            ) from None
        except OAuthError as exc:
            raise SignInFailed(
                "Sign-in refused",
                f"{self.provider} did not accept the sign-in code (error: {exc.error}). Please start again.",
                400,
            ) from None
        except (JoseError, AuthlibBaseError) as exc:
            raise SignInFailed(
                "Sign-in could not be verified",
                f"The identity token from {self.provider} failed verification ({_jose_reason(exc)}), "
                "so you were not signed in.",
                400,
            ) from None
        except _PROVIDER_IO_ERRORS as exc:
            raise self._unreachable(exc) from None
        claims = token.get("userinfo")
        if not claims or not claims.get("sub") or not claims.get("iss"):
            raise SignInFailed("Sign-in failed", f"{self.provider} did not return an identity token.", 502)
        return self._check_account(dict(claims))

    def _check_account(self, claims: dict[str, Any]) -> dict[str, Any]:
        if not claims.get("email"):
            raise SignInFailed(
                "Sign-in failed", f"{self.provider} did not share an email address for this account.", 403
            )
        if claims.get("email_verified") not in (True, "true"):
            raise SignInFailed(
                "Email address not verified",
                f"{self.provider} has not verified the email address {claims['email']}; "
                "verify it with the provider, then sign in again.",
                403,
            )
        domain = self.settings.oidc_allowed_domain
        if domain and str(claims.get("hd") or "").lower() != domain.lower():
            raise SignInFailed(
                "Account not allowed",
                f"Only accounts of the {domain} domain may sign in to this server; {claims['email']} is not one.",
                403,
            )
        return claims


def _jose_reason(exc: Exception) -> str:
    """A short, secret-free reason, e.g. "Invalid claim: 'nonce'"; never the token itself."""
    if isinstance(exc, (BadSignatureError, InvalidKeyIdError)):
        return "its signature does not match the provider's published keys"
    description = getattr(exc, "description", None)
    if isinstance(description, str) and 0 < len(description) <= 120:
        return description.rstrip(".")
    return type(exc).__name__


def routes(settings: Settings) -> list[BaseRoute]:
    """The OIDC routes, wrapped in their own session cookie for Authlib's state, nonce and code verifier."""
    sign_in = OIDCSignIn(settings)
    flow_session = Middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=FLOW_COOKIE,
        max_age=FLOW_MAX_AGE_S,
        path="/auth/oidc",
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    return [
        Mount(
            "/auth/oidc",
            routes=[
                Route("/login", sign_in.login, methods=["GET"]),
                Route("/callback", sign_in.callback, methods=["GET"]),
            ],
            middleware=[flow_session],
        )
    ]

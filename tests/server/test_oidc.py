"""Sign in with OpenID Connect: the whole authorization-code flow, over real HTTP.

The provider is the real `oidc-provider-mock` (a Flask app) on 127.0.0.1 in a thread; the
app is the real server under uvicorn; the "browser" is an httpx client carrying cookies
between the two. oidc-provider-mock 0.3 ignores PKCE, so `Provider` puts a small RFC 7636
check in front of its token endpoint (S256 of the verifier must equal the challenge sent
with the authorization request); that is what makes the PKCE tests mean something.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import pytest
import werkzeug.serving

from server.accounts import ensure_user_by_email
from server.db import DB
from server.settings import Settings
from tests.conftest import Client, LiveServer, free_port

CLIENT_ID = "sentry-logger-test"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Provider:
    """oidc-provider-mock on 127.0.0.1:<free port>, with PKCE enforcement and a JWKS switch."""

    def __init__(self) -> None:
        self.oidc_app: WSGIApp = oidc_provider_mock.app(require_nonce=True)
        self.enforce_pkce = True
        self.jwks_from: Provider | None = None  # serve another provider's keys (bad signatures)
        self.authorize_requests: list[dict[str, str]] = []
        self._challenges: dict[str, tuple[str, str]] = {}  # code -> (challenge, method)
        self._server = werkzeug.serving.make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.discovery_url = f"{self.url}/.well-known/openid-configuration"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()

    def set_user(self, sub: str, **claims: Any) -> None:
        httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def _wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/jwks" and self.jwks_from is not None:
            return self.jwks_from.oidc_app(environ, start_response)
        if path == "/oauth2/authorize":
            query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            if method == "GET":
                self.authorize_requests.append(query)
                return self.oidc_app(environ, start_response)
            return self._authorize(environ, start_response, query)
        if path == "/oauth2/token" and method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            if self.enforce_pkce and form.get("grant_type") == "authorization_code" and not self._pkce_ok(form):
                payload = json.dumps({"error": "invalid_grant", "error_description": "PKCE verification failed"})
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [payload.encode()]
        return self.oidc_app(environ, start_response)

    def _authorize(
        self, environ: dict[str, Any], start_response: StartResponse, query: dict[str, str]
    ) -> Iterable[bytes]:
        def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            for name, value in headers:
                code = parse_qs(urlsplit(value).query).get("code") if name.lower() == "location" else None
                if code:
                    self._challenges[code[0]] = (
                        query.get("code_challenge", ""),
                        query.get("code_challenge_method", ""),
                    )
            return start_response(status, headers, *exc)

        return self.oidc_app(environ, capture)

    def _pkce_ok(self, form: dict[str, str]) -> bool:
        challenge, method = self._challenges.pop(form.get("code", ""), ("", ""))
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return method == "S256" and bool(challenge) and bool(verifier) and digest == challenge


@pytest.fixture(scope="module")
def provider_pair() -> Iterator[tuple[Provider, Provider]]:
    """The provider the app trusts, and an impostor with different signing keys."""
    real, impostor = Provider(), Provider()
    yield real, impostor
    real.stop()
    impostor.stop()


@pytest.fixture
def provider(provider_pair: tuple[Provider, Provider]) -> Iterator[Provider]:
    real = provider_pair[0]
    yield real
    real.enforce_pkce, real.jwks_from = True, None
    real.authorize_requests.clear()


@pytest.fixture
def start_app(
    make_settings: Callable[..., Settings], provider: Provider
) -> Iterator[Callable[..., tuple[str, Settings]]]:
    """Start the real app under uvicorn, configured for `provider`; returns (url, settings)."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> tuple[str, Settings]:
        port = free_port()
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": "client-secret",
            "oidc_discovery_url": provider.discovery_url,
            "oidc_provider_name": "TestID",
        }
        values.update(overrides)
        settings = make_settings(**values)
        server = LiveServer(settings)
        server.start()
        servers.append(server)
        return server.url, settings

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def app_url(start_app: Callable[..., tuple[str, Settings]]) -> str:
    return start_app()[0]


def browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False)


def open_consent(http: httpx.Client, app_url: str, next_url: str = "/") -> httpx.Response:
    """Click "Sign in": the app redirects to the provider, whose consent page comes back."""
    started = http.get(f"{app_url}/auth/oidc/login", params={"next": next_url})
    assert started.status_code == 302, started.text
    page = http.get(started.headers["location"])
    assert page.status_code == 200, page.text
    return page


def consent(http: httpx.Client, page: httpx.Response, sub: str) -> str:
    """Approve as `sub` on the provider's page; returns the callback URL it redirects to."""
    answer = http.post(str(page.url), data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def sign_in(http: httpx.Client, app_url: str, sub: str, next_url: str = "/") -> httpx.Response:
    return http.get(consent(http, open_consent(http, app_url, next_url), sub))


def me(http: httpx.Client, app_url: str) -> httpx.Response:
    return http.get(f"{app_url}/api/me")


def user_row(settings: Settings, email: str) -> dict[str, Any] | None:
    async def fetch() -> dict[str, Any] | None:
        db = DB(settings.database_url)
        await db.connect()
        try:
            return await db.fetch_one("SELECT id, issuer, sub, email, name FROM users WHERE email = :e", {"e": email})
        finally:
            await db.disconnect()

    return asyncio.run(fetch())


def alice(provider: Provider, **overrides: Any) -> str:
    claims = {"email": "alice@example.com", "email_verified": True, "name": "Alice Liddell", **overrides}
    provider.set_user("alice-sub", **claims)
    return "alice-sub"


def test_sign_in_creates_user_and_session_and_returns_to_next(
    start_app: Callable[..., tuple[str, Settings]], provider: Provider
) -> None:
    app_url, settings = start_app()
    with browser() as http:
        started = http.get(f"{app_url}/auth/oidc/login", params={"next": "/apps/3?tab=keys"})
        flow_cookie = started.headers["set-cookie"].lower()
        assert "sl_oidc=" in flow_cookie and "httponly" in flow_cookie and "samesite=lax" in flow_cookie
        assert "path=/auth/oidc" in flow_cookie and "secure" not in flow_cookie
        page = http.get(started.headers["location"])
        sent = provider.authorize_requests[-1]
        assert sent["response_type"] == "code" and sent["client_id"] == CLIENT_ID
        assert sent["redirect_uri"] == f"{app_url}/auth/oidc/callback"
        assert set(sent["scope"].split()) >= {"openid", "email", "profile"}
        assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
        assert len(sent["nonce"]) >= 16 and len(sent["state"]) >= 16
        done = http.get(consent(http, page, alice(provider)))
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/apps/3?tab=keys"
        cookies = done.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("sl_session=")).lower()
        assert "httponly" in session_cookie and "samesite=lax" in session_cookie and "secure" not in session_cookie
        assert any(c.startswith("sl_oidc=null") and "1970" in c for c in cookies)  # flow cookie dropped
        who = me(http, app_url).json()
    assert (who["email"], who["name"], who["via"]) == ("alice@example.com", "Alice Liddell", "session")
    row = user_row(settings, "alice@example.com")
    assert row is not None and (row["issuer"], row["sub"]) == (provider.url, "alice-sub")


@pytest.mark.parametrize("next_url", ["https://evil.example/x", "//evil.example/x", "/\\evil.example"])
def test_next_cannot_redirect_off_site(app_url: str, provider: Provider, next_url: str) -> None:
    with browser() as http:
        done = sign_in(http, app_url, alice(provider), next_url)
    assert done.status_code == 303 and done.headers["location"] == "/"


def test_denied_consent_gives_a_clear_page(app_url: str, provider: Provider) -> None:
    with browser() as http:
        page = open_consent(http, app_url)
        denied = http.post(str(page.url), data={"action": "deny"})
        assert "error=access_denied" in denied.headers["location"]
        done = http.get(denied.headers["location"])
        assert done.status_code == 403
        assert "Sign-in cancelled" in done.text and "access was denied" in done.text
        assert "sl_session" not in http.cookies
        assert me(http, app_url).status_code == 401


def _swapped_code_callback(http: httpx.Client, app_url: str, provider: Provider) -> httpx.Response:
    """A code from one flow delivered with a later flow's state: the code-injection attack."""
    first = open_consent(http, app_url)
    callback = consent(http, first, alice(provider))
    open_consent(http, app_url)  # a second flow: its state, nonce and verifier replace the first's
    second_state = provider.authorize_requests[-1]["state"]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    return http.get(f"{app_url}/auth/oidc/callback", params={"code": code, "state": second_state})


def test_pkce_verifier_is_checked_by_the_provider(app_url: str, provider: Provider) -> None:
    with browser() as http:
        done = _swapped_code_callback(http, app_url, provider)
        assert done.status_code == 400
        assert "did not accept the sign-in code" in done.text and "invalid_grant" in done.text
        assert me(http, app_url).status_code == 401


def test_nonce_is_checked_by_the_app(app_url: str, provider: Provider) -> None:
    provider.enforce_pkce = False  # let the swapped code through the token endpoint: the nonce must stop it
    with browser() as http:
        done = _swapped_code_callback(http, app_url, provider)
        assert done.status_code == 400
        assert "failed verification" in done.text and "nonce" in done.text.lower()
        assert me(http, app_url).status_code == 401


def test_unknown_or_stale_state_is_refused(app_url: str, provider: Provider) -> None:
    with browser() as http:
        callback = consent(http, open_consent(http, app_url), alice(provider))
        with browser() as other:  # the callback opened in a browser that did not start the flow
            elsewhere = other.get(callback)
        assert elsewhere.status_code == 400 and "Sign-in expired" in elsewhere.text
        first = open_consent(http, app_url)
        open_consent(http, app_url)  # restarting replaces the first flow's state
        stale = http.get(consent(http, first, "alice-sub"))
        assert stale.status_code == 400 and "does not match a sign-in started in this browser" in stale.text
        for query in ("", "?code=forged", "?state=forged"):
            forged = http.get(f"{app_url}/auth/oidc/callback{query}")
            assert forged.status_code == 400 and "<h1>Sign-in expired</h1>" in forged.text
        assert me(http, app_url).status_code == 401


def test_bad_id_token_signature_is_refused(
    app_url: str, provider: Provider, provider_pair: tuple[Provider, Provider]
) -> None:
    provider.jwks_from = provider_pair[1]  # the app now fetches the impostor's keys
    with browser() as http:
        done = sign_in(http, app_url, alice(provider))
        assert done.status_code == 400
        assert "Sign-in could not be verified" in done.text and "signature does not match" in done.text
        assert me(http, app_url).status_code == 401


@pytest.mark.parametrize("verified", [False, "false", None])
def test_unverified_email_is_refused(app_url: str, provider: Provider, verified: Any) -> None:
    claims: dict[str, Any] = {"email_verified": verified} if verified is not None else {}
    provider.set_user("bob-sub", email="bob@example.com", name="Bob", **claims)
    with browser() as http:
        done = sign_in(http, app_url, "bob-sub")
        assert done.status_code == 403 and "Email address not verified" in done.text
        assert me(http, app_url).status_code == 401


def test_allowed_domain_checks_the_hd_claim(start_app: Callable[..., tuple[str, Settings]], provider: Provider) -> None:
    app_url, _ = start_app(oidc_allowed_domain="example.com")
    with browser() as http:
        done = sign_in(http, app_url, alice(provider, hd="example.com"))
        assert done.status_code == 303 and me(http, app_url).status_code == 200
        assert provider.authorize_requests[-1]["hd"] == "example.com"
    for hd in ("other.org", None):
        claims = {"hd": hd} if hd else {}
        provider.set_user("mallory-sub", email="mallory@example.com", email_verified=True, **claims)
        with browser() as http:
            refused = sign_in(http, app_url, "mallory-sub")
            assert refused.status_code == 403 and "Only accounts of the example.com domain" in refused.text
            assert me(http, app_url).status_code == 401


def test_second_sign_in_keeps_the_user_when_email_changes(app_url: str, provider: Provider) -> None:
    with browser() as http:
        sign_in(http, app_url, alice(provider))
        first = me(http, app_url).json()
    with browser() as http:
        sign_in(http, app_url, alice(provider, email="alice@new.example", name="Alice L."))
        second = me(http, app_url).json()
    assert second["id"] == first["id"]
    assert (second["email"], second["name"]) == ("alice@new.example", "Alice L.")


def test_first_sign_in_claims_an_invited_user(
    start_app: Callable[..., tuple[str, Settings]], provider: Provider
) -> None:
    app_url, settings = start_app()

    async def invite() -> int:
        db = DB(settings.database_url)
        await db.connect()
        try:
            return (await ensure_user_by_email(db, "alice@example.com")).id
        finally:
            await db.disconnect()

    invited_id = asyncio.run(invite())
    with browser() as http:
        sign_in(http, app_url, alice(provider))
        assert me(http, app_url).json()["id"] == invited_id


def test_sign_out_kills_the_session(app_url: str, provider: Provider) -> None:
    with browser() as http:
        sign_in(http, app_url, alice(provider))
        old_cookie = http.cookies["sl_session"]
        out = http.post(f"{app_url}/auth/logout", headers={"Origin": app_url})
        assert out.status_code == 303 and out.headers["location"] == "/auth/signin"
    with httpx.Client(timeout=10, cookies={"sl_session": old_cookie}) as replay:
        assert me(replay, app_url).status_code == 401


@pytest.mark.parametrize("path", ["unreachable", "/", "/missing", "/jwks"])
def test_broken_or_unreachable_discovery_gives_502(
    start_app: Callable[..., tuple[str, Settings]], provider: Provider, path: str
) -> None:
    url = (
        f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
        if path == "unreachable"
        else provider.url + path
    )
    app_url, _ = start_app(oidc_discovery_url=url)
    with browser() as http:
        for endpoint in ("login", "callback?code=x&state=y"):
            page = http.get(f"{app_url}/auth/oidc/{endpoint}")
            assert page.status_code == 502, page.text
            assert "Sign-in provider" in page.text and "<h1>" in page.text


def test_provider_down_during_callback_gives_502(start_app: Callable[..., tuple[str, Settings]]) -> None:
    temporary = Provider()
    try:
        app_url, _ = start_app(oidc_discovery_url=temporary.discovery_url)
        with browser() as http:
            callback = consent(http, open_consent(http, app_url), alice(temporary))
            temporary.stop()
            done = http.get(callback)
    finally:
        if temporary._thread.is_alive():
            temporary.stop()
    assert done.status_code == 502 and "could not be reached" in done.text


def test_https_public_url_makes_the_flow_cookie_secure(make_client: Callable[..., Client], provider: Provider) -> None:
    client = make_client(
        public_url="https://logs.example.com", oidc_client_id=CLIENT_ID, oidc_discovery_url=provider.discovery_url
    )
    started = client.get("/auth/oidc/login", follow_redirects=False)
    assert started.status_code == 302
    assert "secure" in started.headers["set-cookie"].lower()
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["redirect_uri"] == ["https://logs.example.com/auth/oidc/callback"]


def test_oidc_routes_say_when_not_configured(client: Client) -> None:
    for path in ("/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"):
        page = client.get(path)
        assert page.status_code == 404 and "OIDC_CLIENT_ID" in page.text

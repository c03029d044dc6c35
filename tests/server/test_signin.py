"""Local developer sign-in, sign-out, the sign-in page and CSRF protection of browser writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.routing import Route

from server import api
from server.auth import SESSION_COOKIE
from tests.conftest import AppFixture, Client

SITE = "http://testserver"  # the TestClient's own origin


def local_sign_in(client: Client, origin: str | None = SITE, next_url: str = "/apps") -> Any:
    headers = {"Origin": origin} if origin else {}
    return client.post("/auth/local", data={"next": next_url}, headers=headers, follow_redirects=False)


def test_local_sign_in_works_on_loopback(make_client: Callable[..., Client]) -> None:
    client = make_client(host="127.0.0.1")
    done = client.post("/auth/local", data={"next": "/apps"}, headers={"Origin": SITE}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/apps"
    cookie = done.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie
    me = client.get("/api/me").json()
    assert (me["email"], me["name"], me["via"]) == ("developer@localhost", "Local developer", "session")
    again = client.post("/auth/local", headers={"Referer": f"{SITE}/auth/signin"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/"
    assert client.get("/api/me").json()["id"] == me["id"]  # one local developer, not one per click


def test_local_sign_in_keeps_next_on_site(make_client: Callable[..., Client]) -> None:
    client = make_client()
    for next_url in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        done = client.post("/auth/local", data={"next": next_url}, headers={"Origin": SITE}, follow_redirects=False)
        assert done.headers["location"] == "/"


def test_local_sign_in_refused_on_a_public_address(make_client: Callable[..., Client]) -> None:
    client = make_client(host="0.0.0.0")
    refused = client.post("/auth/local", headers={"Origin": SITE}, follow_redirects=False)
    assert refused.status_code == 403
    assert "only works when the server listens on a loopback address" in refused.text
    assert "LOCAL_LOGIN_ALLOW_REMOTE" in refused.text
    assert SESSION_COOKIE not in refused.cookies
    assert client.get("/api/me").status_code == 401
    page = client.get("/auth/signin").text  # the sign-in page says so instead of offering the button
    assert "Continue as local developer" not in page and "LOCAL_LOGIN_ALLOW_REMOTE" in page


def test_local_sign_in_on_a_public_address_when_explicitly_allowed(make_client: Callable[..., Client]) -> None:
    client = make_client(host="0.0.0.0", local_login_allow_remote=True)
    done = client.post("/auth/local", headers={"Origin": SITE}, follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/api/me").json()["email"] == "developer@localhost"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.evil.example", None])
def test_local_sign_in_refused_cross_origin(make_client: Callable[..., Client], origin: str | None) -> None:
    client = make_client()
    headers = {"Origin": origin} if origin else {}
    refused = client.post("/auth/local", headers=headers, follow_redirects=False)
    assert refused.status_code == 403 and "did not come from this site" in refused.text
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize(
    "overrides", [{"oidc_client_id": "some-client"}, {"local_login": "false"}, {"production": True}]
)
def test_local_sign_in_off_when_configured_so(make_client: Callable[..., Client], overrides: dict[str, object]) -> None:
    client = make_client(**overrides)
    refused = client.post("/auth/local", headers={"Origin": SITE}, follow_redirects=False)
    assert refused.status_code == 403 and "turned off" in refused.text
    assert "Continue as local developer" not in client.get("/auth/signin").text


def test_sign_in_page_offers_the_configured_methods(make_client: Callable[..., Client]) -> None:
    local = make_client().get("/auth/signin?next=/apps").text
    assert "Continue as local developer" in local and 'value="/apps"' in local and "/auth/oidc/login" not in local
    oidc = make_client(oidc_client_id="some-client", oidc_provider_name="Google").get("/auth/signin?next=/apps").text
    assert "Sign in with Google" in oidc and "/auth/oidc/login?next=/apps" in oidc
    deep = make_client(oidc_client_id="some-client").get("/auth/signin", params={"next": "/apps/3?tab=keys&x=1"}).text
    assert "/auth/oidc/login?next=/apps/3%3Ftab%3Dkeys%26x%3D1" in deep  # `next` survives as one parameter
    assert "Continue as local developer" not in oidc


def test_sign_out_kills_the_session(client: Client) -> None:
    local_sign_in(client)
    old_cookie = client.cookies[SESSION_COOKIE]
    out = client.post("/auth/logout", headers={"Origin": SITE}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/auth/signin"
    client.cookies.set(SESSION_COOKIE, old_cookie)
    assert client.get("/api/me").status_code == 401


def test_sign_out_refused_cross_origin(client: Client) -> None:
    local_sign_in(client)
    refused = client.post("/auth/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/api/me").status_code == 200


def test_cookie_write_needs_the_csrf_token(client: Client) -> None:
    csrf = client.sign_in(client.create_user("alice@example.com"))
    del client.headers["x-csrf-token"]
    missing = client.post("/api/apps", json={"name": "shop"})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = client.post("/api/apps", json={"name": "shop"}, headers={"X-CSRF-Token": csrf[::-1]})
    assert wrong.status_code == 403
    assert client.get("/api/apps").json()["apps"] == []
    created = client.post("/api/apps", json={"name": "shop"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201


def test_bearer_token_writes_need_no_csrf(client: Client) -> None:
    token = client.token_for(client.create_user("bot@example.com"))
    created = client.post("/api/apps", json={"name": "ci"}, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201


def test_every_cookie_authenticated_api_write_checks_csrf(client: Client, owned_app: AppFixture) -> None:
    del client.headers["x-csrf-token"]
    key_id = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"][0]["id"]
    checked = 0
    for route in api.routes:
        assert isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"GET", "HEAD", "OPTIONS"}):
            path = route.path.format(app_id=owned_app.app_id, key_id=key_id)
            answer = client.request(method, path, json={"name": "renamed"})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "csrf_failed"
            checked += 1
    assert checked >= 6
    client.headers["x-csrf-token"] = owned_app.csrf
    assert client.get(f"/api/apps/{owned_app.app_id}").json()["name"] == "shop"  # nothing changed
    assert [k["id"] for k in client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]] == [key_id]

"""CLI device authorization over HTTP: start, every poll outcome, approval and denial with a
session + CSRF, single-use and expiring codes, the wrong-code limit, and no secret at rest
or in logs. (The real CLI and the browser page: tests/sdk/test_cli_init.py and
tests/frontend/test_device_link.py.)"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from server import device
from server._device_codes import USER_CODE_ALPHABET
from server.security import now_s
from tests.conftest import Client

CODE_RE = re.compile(f"^[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}$")


def start(c: Client, app_name: str = "shop", environment: str | None = "staging") -> dict[str, Any]:
    body = {"app_name": app_name} | ({"environment": environment} if environment else {})
    r = c.post("/sdk/device/start", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def error(r: Any) -> str:
    assert r.status_code == 400, r.text
    assert "api_key" not in r.text
    return str(r.json()["error"]["code"])


@pytest.fixture
def fast(make_client: Callable[..., Client]) -> Client:
    """No minimum poll interval, so a test can poll back to back without slow_down."""
    return make_client(device_poll_interval_seconds=0)


def test_start_answers_codes_and_where_to_approve(client: Client) -> None:
    out = start(client)
    assert CODE_RE.match(out["user_code"])
    assert out["device_code"].startswith("sld_") and len(out["device_code"]) >= 40
    base = client.app_state["settings"].base_url
    assert out["verification_uri"] == f"{base}/sdk/link"
    assert out["verification_uri_complete"] == f"{base}/sdk/link?code={out['user_code']}"
    assert (out["expires_in"], out["interval"]) == (600, 5)


def test_start_validates_its_fields(client: Client) -> None:
    r = client.post("/sdk/device/start", json={})
    assert r.status_code == 422 and r.json()["error"]["field"] == "app_name"
    r = client.post("/sdk/device/start", json={"app_name": "x" * 65})
    assert r.status_code == 422 and "limit is 64" in r.json()["error"]["message"]
    r = client.post("/sdk/device/start", json={"app_name": "shop", "environment": "Prod!"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "environment"


def test_start_is_rate_limited_per_address(make_client: Callable[..., Client]) -> None:
    c = make_client(device_start_rate_limit=2)
    start(c), start(c)
    r = c.post("/sdk/device/start", json={"app_name": "shop"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_approved_over_http_key_delivered_exactly_once(fast: Client) -> None:
    out = start(fast)
    assert error(fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "authorization_pending"
    fast.sign_in(fast.create_user("alice@example.com"))
    info = fast.get("/sdk/device/lookup", params={"user_code": out["user_code"].lower().replace("-", "")}).json()
    assert (info["app_name"], info["environment"], info["existing_app"]) == ("shop", "staging", False)
    # Looking alone authorizes nothing.
    assert error(fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "authorization_pending"

    done = fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}).json()
    assert done["status"] == "approved" and done["app_created"] and done["key_prefix"].startswith("sk_staging_")

    got = fast.post("/sdk/device/poll", json={"device_code": out["device_code"]})
    assert got.status_code == 200, got.text
    key = got.json()
    assert key["api_key"].startswith("sk_staging_") and key["environment"] == "staging"
    assert key["app"] == done["app"] and key["dsn"] == fast.app_state["settings"].base_url
    # The key works for ingest, and appears in the app's key list.
    ingest = fast.post("/ingest", json={"logs": [{"timestamp": 1.0, "level": "INFO", "message": "hi"}]},
                       headers={"Authorization": f"Bearer {key['api_key']}"})
    assert ingest.status_code == 202, ingest.text
    prefixes = [k["prefix"] for k in fast.get(f"/api/apps/{key['app']['id']}/keys").json()["keys"]]
    assert done["key_prefix"] in prefixes
    # A second successful poll returns nothing secret.
    again = fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})
    assert error(again) == "expired_token" and "already fetched" in again.json()["error"]["message"]


def test_existing_app_of_that_name_is_reused(fast: Client) -> None:
    fast.sign_in(fast.create_user("alice@example.com"))
    app = fast.post("/api/apps", json={"name": "Shop", "environment": "prod"}).json()["app"]
    out = start(fast, "shop", None)
    assert fast.get("/sdk/device/lookup", params={"user_code": out["user_code"]}).json()["existing_app"] is True
    done = fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}).json()
    assert done["app"] == {"id": app["id"], "name": "Shop"} and not done["app_created"]
    key = fast.post("/sdk/device/poll", json={"device_code": out["device_code"]}).json()
    assert key["api_key"].startswith("sk_production_")  # environment defaults like the dashboard's
    assert len(fast.get("/api/apps").json()["apps"]) == 1


def test_denied(fast: Client) -> None:
    out = start(fast)
    fast.sign_in(fast.create_user("alice@example.com"))
    assert fast.post("/sdk/device/deny", json={"user_code": out["user_code"]}).json()["status"] == "denied"
    assert error(fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "access_denied"
    assert fast.get("/api/apps").json()["apps"] == []


def test_codes_are_single_use(fast: Client) -> None:
    out = start(fast)
    fast.sign_in(fast.create_user("alice@example.com"))
    assert fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}).status_code == 200
    for path in ("/sdk/device/complete", "/sdk/device/deny"):
        r = fast.post(path, json={"user_code": out["user_code"]})
        assert r.status_code == 409 and r.json()["error"]["code"] == "code_used"
    assert fast.get("/sdk/device/lookup", params={"user_code": out["user_code"]}).status_code == 409


def test_completing_needs_a_session_and_csrf(fast: Client) -> None:
    out = start(fast)
    assert fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}).status_code == 401
    user = fast.create_user("alice@example.com")
    token = fast.token_for(user)
    r = fast.post("/sdk/device/complete", json={"user_code": out["user_code"]},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "session_required"
    fast.sign_in(user)
    r = fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}, headers={"x-csrf-token": "wrong"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    assert error(fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "authorization_pending"


def test_slow_down_raises_the_interval(client: Client) -> None:
    out = start(client)
    assert error(client.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "authorization_pending"
    r = client.get("/sdk/device/poll", params={"device_code": out["device_code"]})
    assert error(r) == "slow_down" and r.json()["error"]["interval"] == 10
    r = client.get("/sdk/device/poll", params={"device_code": out["device_code"]})
    assert error(r) == "slow_down" and r.json()["error"]["interval"] == 15


def test_expired_request(make_client: Callable[..., Client]) -> None:
    c = make_client(device_code_lifetime_seconds=0, device_poll_interval_seconds=0)
    out = start(c)
    assert out["expires_in"] == 0
    assert error(c.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "expired_token"
    c.sign_in(c.create_user("alice@example.com"))
    r = c.post("/sdk/device/complete", json={"user_code": out["user_code"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "invalid_user_code"


def test_approved_but_never_fetched_key_is_revoked_at_expiry(fast: Client) -> None:
    out = start(fast)
    fast.sign_in(fast.create_user("alice@example.com"))
    done = fast.post("/sdk/device/complete", json={"user_code": out["user_code"]}).json()
    fast.call(fast.db.execute, "UPDATE device_authorizations SET expires_at = :t", {"t": now_s() - 1})
    assert error(fast.get("/sdk/device/poll", params={"device_code": out["device_code"]})) == "expired_token"
    keys = fast.get(f"/api/apps/{done['app']['id']}/keys").json()["keys"]
    assert done["key_prefix"] not in [k["prefix"] for k in keys]


def test_unknown_and_missing_device_codes(client: Client) -> None:
    assert error(client.get("/sdk/device/poll", params={"device_code": "sld_nope"})) == "invalid_grant"
    assert error(client.get("/sdk/device/poll")) == "invalid_request"


def test_wrong_codes_are_limited_per_user_and_per_address(make_client: Callable[..., Client]) -> None:
    c = make_client(device_wrong_code_limit=3)
    out = start(c)
    alice, bob, carol = (c.create_user(f"{n}@example.com") for n in ("alice", "bob", "carol"))
    c.sign_in(alice)
    for _ in range(3):
        r = c.get("/sdk/device/lookup", params={"user_code": "BBBB-BBBB"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "invalid_user_code"
    # Blocked even with the right code: a blocked caller learns nothing.
    r = c.post("/sdk/device/complete", json={"user_code": out["user_code"]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts" and int(r.headers["retry-after"]) > 0
    db, limiter = c.db, c.app_state["device_code_limiter"]
    # The same user from another address, and another user from the same address: still blocked.
    for user, address in ((alice, "10.0.0.2"), (bob, "testclient")):
        with pytest.raises(Exception, match="too many wrong codes"):
            c.call(device.lookup, db, limiter, user, out["user_code"], address)
    info = c.call(device.lookup, db, limiter, carol, out["user_code"], "10.0.0.3")
    assert info["app_name"] == "shop"


def test_no_secret_at_rest_or_in_logs(fast: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out = start(fast)
    fast.sign_in(fast.create_user("alice@example.com"))
    fast.post("/sdk/device/complete", json={"user_code": out["user_code"]})
    row = fast.call(fast.db.fetch_one, "SELECT * FROM device_authorizations")
    assert row["sealed_key"]
    key = fast.post("/sdk/device/poll", json={"device_code": out["device_code"]}).json()["api_key"]
    secrets = (out["device_code"], out["user_code"], out["user_code"].replace("-", ""), key, key[-40:])
    stored = " ".join(str(v) for v in row.values())
    assert not any(s in stored for s in secrets)
    assert fast.call(fast.db.fetch_val, "SELECT sealed_key FROM device_authorizations") is None
    assert "device authorization" in caplog.text
    assert not any(s in caplog.text for s in secrets)


def test_access_log_lines_hide_codes(client: Client) -> None:
    access = logging.getLogger("uvicorn.access")
    record = access.makeRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/sdk/device/poll?device_code=sld_SECRET&x=1", "1.1", 400), None)
    assert access.filter(record)
    assert "sld_SECRET" not in record.getMessage() and "device_code=***&x=1" in record.getMessage()

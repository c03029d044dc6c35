from __future__ import annotations

import re
import time

import pytest

from server.openapi import openapi_document
from tests.conftest import AppFixture, Client


def test_create_app_returns_the_key_once_and_lists_only_prefixes(client: Client, owned_app: AppFixture) -> None:
    assert re.fullmatch(r"sk_prod_[0-9a-f]{40}", owned_app.api_key)
    keys = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]
    assert len(keys) == 1 and owned_app.api_key.startswith(keys[0]["prefix"])
    listing = client.get("/api/apps").text + client.get(f"/api/apps/{owned_app.app_id}").text
    assert owned_app.api_key not in listing and owned_app.api_key not in str(keys)
    stored = client.call(client.db.fetch_all, "SELECT key_hash FROM api_keys")
    assert owned_app.api_key not in str(stored)


def test_app_name_is_validated(client: Client, owned_app: AppFixture) -> None:
    for body, field in (({}, "name"), ({"name": "  "}, "name"), ({"name": "x" * 65}, "name"),
                        ({"name": "ok", "environment": "Prod!"}, "environment"), ({"name": "ok", "description": "d" * 501}, "description")):
        r = client.post("/api/apps", json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, body
    dup = client.post("/api/apps", json={"name": "SHOP"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "name_taken"


def test_several_keys_per_app_and_regenerate_kills_the_old_key_at_once(client: Client, owned_app: AppFixture) -> None:
    base = f"/api/apps/{owned_app.app_id}/keys"
    dev = client.post(base, json={"environment": "dev"}).json()
    assert dev["api_key"].startswith("sk_dev_") and dev["dsn"]
    keys = client.get(base).json()["keys"]
    assert {k["environment"] for k in keys} == {"prod", "dev"}
    log = {"timestamp": time.time(), "level": "INFO", "message": "hi"}
    assert client.post("/ingest", json={"api_key": dev["api_key"], "logs": [log]}).status_code == 202
    new = client.post(f"{base}/{dev['key']['id']}/regenerate").json()
    assert new["api_key"] != dev["api_key"] and new["api_key"].startswith("sk_dev_")
    assert client.post("/ingest", json={"api_key": dev["api_key"], "logs": [log]}).status_code == 401
    assert client.post("/ingest", json={"api_key": new["api_key"], "logs": [log]}).status_code == 202
    again = client.post(f"{base}/{dev['key']['id']}/regenerate")
    assert again.status_code == 409
    everything = client.get(base, params={"include_revoked": "true"}).json()["keys"]
    assert len(everything) == 3 and sum(k["revoked_at"] is None for k in everything) == 2


def test_rename_and_delete_app(client: Client, owned_app: AppFixture) -> None:
    r = client.patch(f"/api/apps/{owned_app.app_id}", json={"name": "store", "description": "the shop"})
    assert r.status_code == 200 and r.json()["name"] == "store"
    client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [{"timestamp": 1, "level": "INFO", "message": "x"}]})
    assert client.delete(f"/api/apps/{owned_app.app_id}").status_code == 204
    assert client.get(f"/api/apps/{owned_app.app_id}").status_code == 404
    assert client.post("/ingest", json={"api_key": owned_app.api_key, "logs": []}).status_code == 401
    assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM logs") == 0


def _app_routes(app_id: int, key_id: int) -> list[tuple[str, str]]:
    a = f"/api/apps/{app_id}"
    return [
        ("GET", a), ("PATCH", a), ("DELETE", a), ("GET", f"{a}/keys"), ("POST", f"{a}/keys"),
        ("POST", f"{a}/keys/{key_id}/regenerate"), ("DELETE", f"{a}/keys/{key_id}"), ("GET", f"{a}/logs"),
        ("GET", f"{a}/health"), ("GET", f"{a}/health/volume"), ("GET", f"{a}/health/error-rate"),
        ("GET", f"{a}/health/latency"),
    ]


def test_user_b_gets_404_for_every_route_of_user_a(client: Client, owned_app: AppFixture) -> None:
    [key] = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]
    routes = _app_routes(owned_app.app_id, key["id"])
    # Every app route in the OpenAPI document is covered here.
    documented = {(m.upper(), p) for p, ops in openapi_document("")["paths"].items() if p.startswith("/api/apps/{app_id}")
                  for m in ops if m != "parameters"}
    covered = {(m, p.replace(str(owned_app.app_id), "{app_id}", 1).replace(f"/keys/{key['id']}", "/keys/{key_id}"))
               for m, p in routes}
    assert documented == covered
    bob = client.create_user("bob@example.com")
    token = client.token_for(bob)
    for method, path in routes:
        r = client.request(method, path, headers={"Authorization": f"Bearer {token}", "x-csrf-token": ""}, json={"name": "x"})
        assert r.status_code == 404, (method, path, r.status_code)
    assert client.get("/api/apps", headers={"Authorization": f"Bearer {token}"}).json()["apps"] == []
    # Alice's app and key are untouched.
    assert client.get(f"/api/apps/{owned_app.app_id}").json()["name"] == "shop"
    assert client.post("/ingest", json={"api_key": owned_app.api_key, "logs": []}).status_code == 202


def test_ids_past_64_bits_are_404_on_every_app_route(client: Client, owned_app: AppFixture) -> None:
    # Such an id failed in the database driver (a 500), found by schemathesis against /openapi.json.
    [key] = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]
    for app_id, key_id in ((37778931862957161709568, key["id"]), (owned_app.app_id, 37778931862957161709568), (-37778931862957161709568, -37778931862957161709568)):
        for method, path in _app_routes(app_id, key_id):
            if str(owned_app.app_id) in path and "/keys/" not in path:
                continue  # the real app: those routes work
            r = client.request(method, path, json={"name": "x"})
            assert r.status_code == 404, (method, path, r.status_code, r.text)
    for app_id, status in ((2**63, 404), (2**70, 400)):  # past 64 bits unsigned, orjson reads a float: not an integer
        r = client.post("/api/tail-tokens", json={"app_id": app_id})
        assert r.status_code == status, r.text


def test_unauthenticated_api_is_401(client: Client) -> None:
    for method, path in (("GET", "/api/me"), ("GET", "/api/apps"), ("POST", "/api/apps"), ("GET", "/api/apps/1/logs")):
        r = client.request(method, path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/apps", headers={"Authorization": "Bearer slt_" + "0" * 40}).status_code == 401


def test_personal_tokens_work_as_bearer_and_need_no_csrf(client: Client) -> None:
    user = client.create_user("dana@example.com")
    client.sign_in(user)
    created = client.post("/api/tokens", json={"name": "ci"}).json()
    assert created["token"].startswith("slt_") and created["prefix"] == created["token"][:12]
    client.cookies.clear()
    client.headers.pop("x-csrf-token")
    r = client.post("/api/apps", json={"name": "via-token"}, headers={"Authorization": f"Bearer {created['token']}"})
    assert r.status_code == 201


def test_api_rate_limit(make_client: object) -> None:
    client = make_client(api_rate_limit=6)  # type: ignore[operator]
    token = client.token_for(client.create_user("erin@example.com"))
    codes = [client.get("/api/apps", headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(4)]
    assert codes[0] == 200 and 429 in codes


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_openapi_describes_every_declared_route(client: Client, path: str) -> None:
    from starlette.routing import Mount, Route

    doc = client.get(path).json()
    assert doc["openapi"].startswith("3.")
    declared: set[tuple[str, str]] = set()

    def collect(routes: list[object], prefix: str = "") -> None:
        for route in routes:
            if isinstance(route, Route):
                for method in route.methods or ():
                    if method != "HEAD":
                        declared.add((method.lower(), prefix + route.path))
            elif isinstance(route, Mount):
                collect(list(route.routes), prefix + route.path)

    collect(list(client.app.routes))  # type: ignore[attr-defined]
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert declared == described

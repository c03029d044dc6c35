"""NUL in a query parameter or an API body gets a clear error on both databases (PostgreSQL's
text cannot hold it: it answered 500 there)."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.conftest import AppFixture, Client


@pytest.mark.parametrize("params", [{"service": "a\x00b"}, {"environment": "\x00"}, {"attr.k": "v\x00"},
                                    {"q": "ok", "level": "ERROR\x00"}])
def test_a_nul_in_a_query_parameter_is_400_naming_it(client: Client, owned_app: AppFixture, params: dict[str, str]) -> None:
    r = client.get(f"/api/apps/{owned_app.app_id}/logs", params=params)
    assert r.status_code == 400
    name = next(k for k, v in params.items() if "\x00" in v)
    assert r.json()["error"] == {"code": "invalid_parameter", "field": name,
                                 "message": f"query parameter {name} must not contain NUL characters (%00)"}
    assert client.get(f"/api/apps/{owned_app.app_id}/health", params={"service": "a\x00"}).status_code == 400
    assert client.get(f"/api/apps/{owned_app.app_id}/logs", params={"service": "a%00b"}).status_code == 200


def test_a_nul_in_a_tail_filter_closes_the_tail_naming_it(client: Client, owned_app: AppFixture) -> None:
    with client.websocket_connect(f"/ws/tail?app_id={owned_app.app_id}&service=a%00") as ws:
        assert ws.receive_json() == {"type": "closing", "code": 4400, "error": "invalid_parameter",
                                     "message": "query parameter service must not contain NUL characters (%00)"}
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_a_nul_in_an_api_body_field_is_422_naming_it(client: Client, owned_app: AppFixture) -> None:
    r = client.post("/api/apps", json={"name": "shop\x00", "description": "d"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = client.post("/api/apps", json={"name": "shop", "description": "d\x00"})
    assert r.status_code == 422 and r.json()["error"] == {
        "code": "invalid_field", "field": "description", "message": "description must not contain NUL characters"}
    assert client.post("/api/apps", json={"name": "shop 2", "description": "d"}).status_code == 201

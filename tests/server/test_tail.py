"""The live tail WebSocket, driven through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import ClientConnection, connect

from server.settings import Settings
from tests.conftest import Client, LiveServer, _provision, free_port

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def records(n: int, start: int = 0, message: str = "order {i} processed") -> list[dict[str, Any]]:
    return [{"timestamp": 1_764_870_000 + i, "level": LEVELS[i % 4], "message": message.format(i=i),
             "service": ("api", "worker")[i % 3 == 0]} for i in range(start, start + n)]


def setup_app(c: Client, email: str = "alice@example.com") -> tuple[dict[str, str], int, str]:
    """(auth headers of a personal token, app id, ingest key) of a new user."""
    headers = {"Authorization": f"Bearer {c.token_for(c.create_user(email))}"}
    created = c.post("/api/apps", json={"name": "shop", "environment": "prod"}, headers=headers).json()
    return headers, created["app"]["id"], created["api_key"]


def ingest(c: Client | httpx.Client, key: str, logs: list[dict[str, Any]]) -> None:
    r = c.post("/ingest", json={"logs": logs}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text


def stored_ids(c: Client, headers: dict[str, str], app_id: int, **params: Any) -> list[int]:
    page = c.get(f"/api/apps/{app_id}/logs", params={"after_id": 0, "limit": 1000, **params}, headers=headers).json()
    assert not page["has_more"]
    return [line["id"] for line in page["logs"]]


def read_lines(ws: WebSocketTestSession, want: int, frames: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Log lines from `logs` frames until `want` arrived (heartbeats keep receive from blocking)."""
    lines: list[dict[str, Any]] = []
    for _ in range(10_000):
        if len(lines) >= want:
            return lines
        frame = ws.receive_json()
        if frames is not None:
            frames.append(frame)
        assert frame["type"] in ("logs", "heartbeat", "filters"), frame
        lines.extend(frame.get("logs", []))
    raise AssertionError("too many frames")


def refused(c: Client, url: str, **kwargs: Any) -> tuple[int, str]:
    with c.websocket_connect(url, **kwargs) as ws:
        closing = ws.receive_json()
        assert closing["type"] == "closing"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == closing["code"] and info.value.reason
        return closing["code"], closing["error"]


def test_tail_streams_committed_lines_in_order_filtered_and_filters_change_live(
    make_client: Callable[..., Client],
) -> None:
    c = make_client(tail_heartbeat_seconds=0.2)
    headers, app_id, key = setup_app(c)
    ingest(c, key, records(5))  # before the tail: not sent (no after_id)
    with c.websocket_connect(f"/ws/tail?app_id={app_id}&min_level=WARNING&service=api", headers=headers) as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["filters"]["min_level"] == "WARNING"
        for n in range(3):
            ingest(c, key, records(40, 100 + 40 * n))
        want = [i for i in stored_ids(c, headers, app_id, min_level="WARNING", service="api") if i > ready["cursor"]]
        frames: list[dict[str, Any]] = []
        got = read_lines(ws, len(want), frames)
        assert [line["id"] for line in got] == want
        assert all(line["level"] in ("WARNING", "ERROR") and line["service"] == "api" for line in got)
        assert max(len(f.get("logs", [])) for f in frames) > 1, "lines are batched per frame"

        ws.send_json({"type": "filter", "filters": {"q": "refund", "level": ["ERROR", "INFO"]}})
        assert ws.receive_json()["filters"]["level"] == ["INFO", "ERROR"]
        ingest(c, key, records(8, 500) + records(8, 600, "refund {i} sent"))
        got = read_lines(ws, 4)
        assert [line["message"] for line in got] == [f"refund {i} sent" for i in (601, 603, 605, 607)]
        ws.send_json({"type": "filter", "filters": {"level": "LOUD"}})
        error = ws.receive_json()
        assert error["type"] == "error" and error["field"] == "level"
        ws.send_json({"type": "ping"})
        while (frame := ws.receive_json())["type"] == "heartbeat":
            pass
        assert frame["type"] == "pong"


def test_refusals_have_clear_close_codes(client: Client) -> None:
    headers, app_id, key = setup_app(client)
    bob_headers, bob_app, _ = setup_app(client, "bob@example.com")
    url = f"/ws/tail?app_id={app_id}"
    assert refused(client, url) == (4401, "unauthenticated")
    assert refused(client, url, headers={"Authorization": f"Bearer {key}"}) == (4401, "ingest_key_refused")
    assert refused(client, url, headers={"Authorization": "Bearer slt_" + "0" * 40}) == (4401, "unauthenticated")
    assert refused(client, url, headers=bob_headers) == (4404, "app_not_found")
    assert refused(client, "/ws/tail?app_id=x", headers=headers) == (4400, "invalid_parameter")
    assert refused(client, "/ws/tail?app_id=37778931862957161709568", headers=headers) == (4400, "invalid_parameter")
    assert refused(client, f"{url}&after_id=37778931862957161709568", headers=headers) == (4400, "invalid_parameter")
    assert refused(client, f"{url}&level=LOUD", headers=headers) == (4400, "invalid_parameter")
    assert refused(client, f"{url}&token=garbage") == (4401, "invalid_tail_token")

    # Tail tokens: for the caller's own apps only, for that app only.
    assert client.post("/api/tail-tokens", json={"app_id": bob_app}, headers=headers).status_code == 404
    assert client.post("/api/tail-tokens", json={}, headers=headers).status_code == 400
    issued = client.post("/api/tail-tokens", json={"app_id": app_id}, headers=headers)
    assert issued.status_code == 201 and issued.json()["url"].startswith("ws")
    token = issued.json()["token"]
    with client.websocket_connect(f"{url}&token={token}") as ws:
        assert ws.receive_json()["type"] == "ready"
    assert refused(client, f"/ws/tail?app_id={bob_app}&token={token}") == (4403, "wrong_app")

    # Session cookies: same origin only (cross-site WebSocket hijacking).
    client.sign_in(client.create_user("alice@example.com"))
    assert refused(client, url, headers={"Origin": "https://evil.example"}) == (4403, "cross_origin")
    with client.websocket_connect(url, headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "ready"


def test_expired_tail_token_is_refused(make_client: Callable[..., Client]) -> None:
    c = make_client(tail_token_ttl_seconds=-1)
    headers, app_id, _ = setup_app(c)
    token = c.post("/api/tail-tokens", json={"app_id": app_id}, headers=headers).json()["token"]
    assert refused(c, f"/ws/tail?app_id={app_id}&token={token}") == (4401, "invalid_tail_token")


def test_limits_per_user_and_duration_end_with_a_reason(make_client: Callable[..., Client]) -> None:
    c = make_client(tail_max_per_user=1, tail_max_duration_seconds=1, tail_heartbeat_seconds=0.1)
    headers, app_id, key = setup_app(c)
    url = f"/ws/tail?app_id={app_id}"
    with c.websocket_connect(url, headers=headers) as first:
        assert first.receive_json()["type"] == "ready"
        assert refused(c, url, headers=headers) == (4429, "too_many_tails")
        assert c.get("/healthz").json()["live_tail"]["open_tails"] == 1
    with c.websocket_connect(url, headers=headers) as ws:
        ready = ws.receive_json()
        ingest(c, key, records(3))
        kinds = []
        while (frame := ws.receive_json())["type"] != "closing":
            kinds.append(frame["type"])
        assert "heartbeat" in kinds and "logs" in kinds
        assert frame["code"] == 4408 and frame["error"] == "max_duration" and frame["cursor"] > ready["cursor"]
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4408
    assert c.get("/healthz").json()["live_tail"]["tails_closed"]["max_duration"] == 1


def test_shared_hub_reads_a_commit_whose_publish_is_late_from_the_database(
    make_client: Callable[..., Client], redis_url: str,
) -> None:
    """Two processes can publish commits out of commit order; a late or lost publish must not
    leave a gap. Simulated by committing one batch with publishing switched off."""
    c = make_client(hub_url=redis_url, hub_channel_prefix=f"t{secrets.token_hex(4)}", tail_heartbeat_seconds=0.2)
    headers, app_id, key = setup_app(c)
    writer, hub = c.app_state["writer"], c.app_state["hub"]
    with c.websocket_connect(f"/ws/tail?app_id={app_id}", headers=headers) as ws:
        assert ws.receive_json()["type"] == "ready"
        writer.listeners.remove(hub.publish_rows)
        ingest(c, key, records(10))
        writer.listeners.append(hub.publish_rows)
        ingest(c, key, records(10, 10))
        frames: list[dict[str, Any]] = []
        got = read_lines(ws, 20, frames)
        assert [line["id"] for line in got] == stored_ids(c, headers, app_id)
        assert next(f["source"] for f in frames if f["type"] == "logs") == "stored"


# --- real server, real WebSocket client -------------------------------------------------


def start_server(make_settings: Callable[..., Settings], **overrides: Any) -> tuple[LiveServer, str, str, int]:
    port = free_port()
    server = LiveServer(make_settings(port=port, public_url=f"http://127.0.0.1:{port}", **overrides))
    server.start()
    token, key, app_id = _provision(server.settings)
    return server, token, key, app_id


def ws_connect(stack: ExitStack, server: LiveServer, token: str, query: str, **kwargs: Any) -> ClientConnection:
    url = f"ws://127.0.0.1:{server.port}/ws/tail?{query}"
    ws = stack.enter_context(connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10,
                                     **kwargs))
    assert orjson.loads(ws.recv(timeout=10))["type"] == "ready"
    return ws


def test_resume_after_killed_connections_under_load_has_no_gap_or_duplicate(
    make_settings: Callable[..., Settings],
) -> None:
    server, token, key, app_id = start_server(make_settings)
    stack = ExitStack()
    try:
        received: list[int] = []
        ws = ws_connect(stack, server, token, f"app_id={app_id}")

        def load() -> None:
            with server.http() as http:
                for n in range(40):
                    ingest(http, key, records(50, 50 * n))

        loader = threading.Thread(target=load)
        loader.start()
        kills = 0
        while len(received) < 2000:
            frame = orjson.loads(ws.recv(timeout=20))
            received.extend(line["id"] for line in frame.get("logs", []))
            if len(received) > 400 * (kills + 1) and kills < 3:
                ws.socket.shutdown(socket.SHUT_RDWR)  # the network drops: no close handshake
                ws.close()
                kills += 1
                ws = ws_connect(stack, server, token, f"app_id={app_id}&after_id={received[-1]}")
        ws.close()
        loader.join()
        with server.http(headers={"Authorization": f"Bearer {token}"}) as http:
            stored: list[int] = []
            while len(stored) < 2000:
                page = http.get(f"/api/apps/{app_id}/logs", params={"after_id": stored[-1] if stored else 0,
                                                                      "limit": 1000}).json()
                stored.extend(line["id"] for line in page["logs"])
        assert kills == 3
        assert received == stored
    finally:
        stack.close()
        server.stop()


def test_stalled_client_skips_with_a_marker_it_recovers_from(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    server, token, key, app_id = start_server(make_settings, tail_queue_max_lines=200)
    stack = ExitStack()
    try:
        reader = ws_connect(stack, server, token, f"app_id={app_id}")
        stalled = ws_connect(stack, server, token, f"app_id={app_id}", max_queue=1, compression=None)
        fast: list[int] = []
        noise = "x" * 900
        with server.http() as http:
            for n in range(200):  # until the stalled client's queue overflows (TCP buffers fill first)
                ingest(http, key, records(500, 500 * n, "{i} " + noise))
                while len(fast) < 500 * (n + 1):
                    fast.extend(line["id"] for line in orjson.loads(reader.recv(timeout=20)).get("logs", []))
                if http.get("/healthz").json()["live_tail"]["skipped_lines"] > 0:
                    break
            total = 500 * (n + 1)
        assert len(fast) == total == len(set(fast)), "the reading client got every line"
        got: list[int] = []
        skipped: list[dict[str, Any]] = []
        while len(got) + sum(s["count"] for s in skipped) < total:
            frame = orjson.loads(stalled.recv(timeout=20))
            got.extend(line["id"] for line in frame.get("logs", []))
            if frame["type"] == "skipped":
                skipped.append(frame)
        assert len(skipped) == 1 and skipped[0]["reason"] == "slow_consumer"
        gap = skipped[0]
        with server.http(headers={"Authorization": f"Bearer {token}"}) as http:
            recovered: list[int] = []
            while not recovered or recovered[-1] < gap["through_id"]:
                page = http.get(f"/api/apps/{app_id}/logs", params={
                    "after_id": recovered[-1] if recovered else gap["after_id"], "limit": 1000}).json()
                recovered.extend(line["id"] for line in page["logs"])
        recovered = [i for i in recovered if i <= gap["through_id"]]
        assert len(recovered) == gap["count"]
        assert sorted(got + recovered) == fast
        reader.close()
        stalled.close()
    finally:
        stack.close()
        server.stop()

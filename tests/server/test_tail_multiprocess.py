"""Two real server processes (uvicorn subprocesses) share one stream through the machine's
Redis, and separately through PostgreSQL LISTEN/NOTIFY: ingest into one, tail from the other."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from server.settings import load_settings
from tests.conftest import _provision, _reset_pg, free_port
from tests.server.test_tail import ingest, records

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "server.asgi:app", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"],
                cwd=ROOT, env={**os.environ, **env, "PORT": str(port)}, stdout=log_file, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on {port} did not start: {self.stderr()}")
            time.sleep(0.1)

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["redis", "postgresql"])
def hub_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_url" if request.param == "redis" else "pg_url"))


@pytest.fixture
def two_servers(hub_url: str, pg_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    _reset_pg(pg_url)
    env = {
        "DATABASE_URL": pg_url, "HUB_URL": hub_url, "HUB_CHANNEL_PREFIX": f"t{secrets.token_hex(4)}",
        "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "multiprocess-test", "DASHBOARD": "false",
    }
    with ExitStack() as stack:
        first = ServerProcess(env, free_port(), tmp_path / "first.log")  # applies the migrations
        stack.callback(first.stop)
        second = ServerProcess(env, free_port(), tmp_path / "second.log")
        stack.callback(second.stop)
        yield first, second


def test_ingest_into_one_process_tail_and_resume_from_the_other(
    two_servers: tuple[ServerProcess, ServerProcess], pg_url: str, tmp_path: Path,
) -> None:
    ingest_server, tail_server = two_servers
    settings = load_settings(environ={}, env_file=None, database_url=pg_url, data_dir=str(tmp_path / "data"),
                             secret_key="multiprocess-test")
    token, key, app_id = _provision(settings)
    auth = {"Authorization": f"Bearer {token}"}

    def tail(server: ServerProcess, query: str, stack: ExitStack) -> object:
        ws = stack.enter_context(connect(f"ws://127.0.0.1:{server.port}/ws/tail?app_id={app_id}{query}",
                                         additional_headers=auth, open_timeout=10))
        assert orjson.loads(ws.recv(timeout=10))["type"] == "ready"
        return ws

    def load() -> None:
        with httpx.Client(base_url=ingest_server.url, timeout=30) as http:
            for n in range(30):
                ingest(http, key, records(40, 40 * n))

    received: list[int] = []
    with ExitStack() as stack:
        ws = tail(tail_server, "", stack)
        loader = threading.Thread(target=load)
        loader.start()
        switched = False
        try:
            while len(received) < 1200:
                frame = orjson.loads(ws.recv(timeout=20))  # type: ignore[attr-defined]
                received.extend(line["id"] for line in frame.get("logs", []))
                if len(received) >= 400 and not switched:
                    # Resume on the ingesting process: stored lines after our last id, then live.
                    ws.close()  # type: ignore[attr-defined]
                    ws = tail(ingest_server, f"&after_id={received[-1]}", stack)
                    switched = True
        finally:
            loader.join()
    with httpx.Client(base_url=tail_server.url, headers=auth, timeout=30) as http:
        stored: list[int] = []
        while len(stored) < 1200:
            page = http.get(f"/api/apps/{app_id}/logs",
                            params={"after_id": stored[-1] if stored else 0, "limit": 1000}).json()
            stored.extend(line["id"] for line in page["logs"])
        health = http.get("/healthz").json()["live_tail"]
    assert received == stored
    assert health["received_batches"] > 0

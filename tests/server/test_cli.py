from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.settings import Settings, load_settings
from tests.conftest import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": settings.data_dir, "SECRET_KEY": "test-secret"}
    return subprocess.run([sys.executable, "-m", "server", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_migrate_then_provision_an_app_and_a_token_from_the_cli(empty_database_url: str, tmp_path: Path) -> None:
    settings = load_settings(environ={}, env_file=None, data_dir=str(tmp_path), database_url=empty_database_url,
                             secret_key="test-secret")
    first = cli(settings, "migrate")
    assert first.returncode == 0 and "applied" in first.stdout
    assert "up to date" in cli(settings, "migrate").stdout
    created = cli(settings, "apps", "create", "--owner", "ops@example.com", "--name", "billing", "--environment", "staging")
    assert created.returncode == 0, created.stderr
    key = re.search(r"(sk_staging_[0-9a-f]{40})", created.stdout)
    assert key, created.stdout
    duplicate = cli(settings, "apps", "create", "--owner", "ops@example.com", "--name", "billing")
    assert duplicate.returncode == 1 and "already have an app named" in duplicate.stderr
    token_out = cli(settings, "tokens", "create", "--user", "ops@example.com")
    token = re.search(r"(slt_[0-9a-f]{40})", token_out.stdout)
    assert token, token_out.stdout

    port = free_port()
    server = LiveServer(settings.replace(port=port))
    server.start()
    try:
        with httpx.Client(base_url=server.url) as http:
            r = http.post("/ingest", json={"api_key": key.group(1), "logs": [{"timestamp": time.time(), "level": "INFO", "message": "from cli key"}]})
            assert r.status_code == 202
            apps = http.get("/api/apps", headers={"Authorization": f"Bearer {token.group(1)}"}).json()["apps"]
            assert [a["name"] for a in apps] == ["billing"]
    finally:
        server.stop()


def test_bad_setting_is_a_clear_error(settings: Settings) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "PORT": "eighty"}
    out = subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "PORT" in out.stderr


def test_run_logs_every_request_but_successful_ingest(settings: Settings) -> None:
    """`python -m server run` (the Procfile's processes) as a subprocess: uvicorn's access log
    has the API request and the refused ingest request, not the accepted ones."""
    assert cli(settings, "migrate").returncode == 0
    key = re.search(r"(sk_\S+)", cli(settings, "apps", "create", "--owner", "ops@example.com", "--name", "web").stdout)
    assert key
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": settings.data_dir, "SECRET_KEY": "test-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "run", "--no-dashboard", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            while True:
                try:
                    http.get("/openapi.json")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                    time.sleep(0.1)
            log = [{"timestamp": time.time(), "level": "INFO", "message": "m"}]
            for _ in range(3):
                assert http.post("/ingest", json={"api_key": key.group(1), "logs": log}).status_code == 202
            assert http.post("/ingest", json={"api_key": "sk_prod_" + "0" * 40, "logs": log}).status_code == 401
            assert http.get("/api/apps").status_code == 401
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert '"POST /ingest HTTP/1.1" 401' in output
    assert '"GET /api/apps HTTP/1.1" 401' in output
    assert '"GET /openapi.json HTTP/1.1" 200' in output
    assert '"POST /ingest HTTP/1.1" 202' not in output, output

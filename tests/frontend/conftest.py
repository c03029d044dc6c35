"""Browser tests: the whole product (`python -m server run`) in a subprocess, driven by
Debian's Chromium through Playwright.

One server for the whole session, on a fixed port (TEST_DASHBOARD_PORT, default 38765):
Reflex bakes the websocket address into the frontend build, so a fixed port lets every run
reuse the build (`python -m server run` rebuilds only when the frontend changed). A real
OIDC provider (oidc-provider-mock) runs in a thread so "Sign in with Google" works too.
Each test gets a fresh browser context (no cookies) and signs in as it needs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import werkzeug.serving

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("TEST_DASHBOARD_PORT", "38765"))
BASE = f"http://127.0.0.1:{PORT}"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OIDC_CLIENT_ID = "sentry-logger-browser-test"
ARTIFACTS = ROOT / "test-artifacts"


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class OidcProvider:
    """oidc-provider-mock on a free loopback port, in a thread."""

    def __init__(self) -> None:
        import oidc_provider_mock

        self._server = werkzeug.serving.make_server(
            "127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def set_user(self, sub: str, **claims: Any) -> None:
        httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


@dataclass
class Product:
    url: str
    data_dir: Path
    database_url: str
    oidc: OidcProvider
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "a") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "run", "--log-level", "warning"], cwd=ROOT, env=self.env,
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 240
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited ({self.process.returncode}):\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def ingest(self, api_key: str, logs: list[dict[str, Any]]) -> httpx.Response:
        with self.http() as http:
            return http.post("/ingest", json={"logs": logs}, headers={"Authorization": f"Bearer {api_key}"})


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """`python -m server run` with the dashboard, on SQLite, local and OIDC sign-in enabled."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (scripts/test does it as root)")
    if not _port_free(PORT):
        pytest.fail(f"port {PORT} is taken; set TEST_DASHBOARD_PORT to a free port")
    data_dir = tmp_path_factory.mktemp("product")
    database_url = f"sqlite:///{data_dir / 'product.db'}"
    oidc = OidcProvider()
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "browser-server.log"
    log_path.write_text("")
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "SECRET_KEY": "browser-test-secret",
        "HOST": "127.0.0.1", "PORT": str(PORT), "PUBLIC_URL": BASE, "LOCAL_LOGIN": "true",
        "OIDC_DISCOVERY_URL": f"{oidc.url}/.well-known/openid-configuration",
        "OIDC_CLIENT_ID": OIDC_CLIENT_ID, "OIDC_CLIENT_SECRET": "browser-test-client-secret",
        "OIDC_PROVIDER_NAME": "Google", "DASHBOARD": "true", "PYTHONUNBUFFERED": "1",
    }
    product = Product(BASE, data_dir, database_url, oidc, log_path, env)
    try:
        product.start()
        yield product
    finally:
        product.stop()
        oidc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium per test module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which would break every later test that calls asyncio.run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, product: Product) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (no cookies); all closed after the test."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=product.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()

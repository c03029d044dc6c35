"""Shared fixtures: the real app on real SQLite and the machine's real PostgreSQL.

`backend` is parametrised over both databases, so every test that uses `settings`,
`client` or `live_server` runs twice. PostgreSQL comes from TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test); each test run creates its own
database there and drops it at the end. Without PostgreSQL the PostgreSQL half is
skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from server import apps
from server.accounts import User, create_api_token, create_session, ensure_user_by_email, upsert_user
from server.app import create_app
from server.auth import SESSION_COOKIE
from server.db import DB
from server.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _run(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also while an event loop runs in this
    thread (Playwright's sync API keeps one running for the browser tests)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: their session-wide Playwright keeps an event loop in the main thread,
    which `asyncio.run` in other tests' code would trip over."""
    items.sort(key=lambda item: "/tests/frontend/" in str(item.path))


async def ingest_key(db: DB) -> int:
    """The id of a new active API key (of a new user's new app), for batches handed to a
    LogWriter directly: the writer stores a batch only when its key is active at commit time."""
    user = await ensure_user_by_email(db, f"writer-{secrets.token_hex(4)}@example.com")
    _, _, key = await apps.create_app(db, user, "writer")
    return int(key["id"])


def _pg_base(url: str) -> str:
    return url.rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (dropped afterwards)."""
    name = f"sl_test_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        _run(create())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield f"{_pg_base(PG_ADMIN_URL)}/{name}"

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(drop())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's real Redis (TEST_REDIS_URL, default redis://127.0.0.1:6379/0).
    Skipped when unreachable, except under CI=true, where it fails. Use a unique channel
    prefix per test (HUB_CHANNEL_PREFIX) so parallel runs do not see each other."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis not reachable at {url}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


def _reset_pg(url: str) -> None:
    async def reset() -> None:
        conn = await asyncpg.connect(url)
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]
            if tables:
                await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                await conn.execute("ALTER SEQUENCE logs_id_seq RESTART WITH 1")
        finally:
            await conn.close()

    _run(reset())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = str(request.getfixturevalue("pg_url"))
    _reset_pg(url)
    return url


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all (a new PostgreSQL database, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    base = str(request.getfixturevalue("pg_url"))
    name = f"sl_empty_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{_pg_base(base)}/{name}"
    _run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        environ={}, env_file=None, data_dir=str(tmp_path / "data"), database_url=database_url, secret_key="test-secret"
    )


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with overrides, e.g. make_settings(ingest_max_records=10)."""

    def make(**overrides: Any) -> Settings:
        base = {"data_dir": str(tmp_path / "data"), "database_url": database_url, "secret_key": "test-secret"}
        base.update(overrides)
        return load_settings(environ={}, env_file=None, **base)

    return make


class Client(TestClient):
    """TestClient with helpers to create users and act as them."""

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self.portal is not None, "use the client inside `with`"
        return self.portal.call(lambda: fn(*args, **kwargs))

    @property
    def db(self) -> Any:
        return self.app_state["db"]

    def create_user(self, email: str, name: str = "") -> User:
        return self.call(upsert_user, self.db, issuer="https://issuer.test", sub=email, email=email, name=name)

    def sign_in(self, user: User) -> str:
        """Sign `user` in with a session cookie; returns the CSRF token for writes."""
        session_id = self.call(create_session, self.db, user, 1)
        self.cookies.set(SESSION_COOKIE, session_id)
        me = self.get("/api/me").json()
        self.headers["x-csrf-token"] = me["csrf_token"]
        return str(me["csrf_token"])

    def token_for(self, user: User) -> str:
        token, _ = self.call(create_api_token, self.db, user, "test")
        return str(token)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with Client(create_app(settings)) as c:
        yield c


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Client]]:
    """Clients on apps built with overridden settings; all closed at the end of the test."""
    opened: list[Client] = []

    def make(**overrides: Any) -> Client:
        c = Client(create_app(make_settings(**overrides)))
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in reversed(opened):
        c.__exit__(None, None, None)


@dataclass
class AppFixture:
    """A signed-in user with one app and its API key."""

    user: User
    app_id: int
    api_key: str
    csrf: str


@pytest.fixture
def owned_app(client: Client) -> AppFixture:
    user = client.create_user("alice@example.com", "Alice")
    csrf = client.sign_in(user)
    created = client.post("/api/apps", json={"name": "shop", "environment": "prod"}).json()
    return AppFixture(user, created["app"]["id"], created["api_key"], csrf)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """An ASGI app under uvicorn in a daemon thread; stop() and start() again on the same port.
    `config` goes to uvicorn.Config (e.g. lifespan="off")."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {"log_level": "warning", **config}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def make_app(self) -> Any:
        return self.app

    def start(self) -> None:
        config = uvicorn.Config(self.make_app(), host="127.0.0.1", port=self.port, **self.config)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
            self._server = self._thread = None


class LiveServer(ThreadedServer):
    """The real app (a new one at every start) on `settings.port`."""

    def __init__(self, settings: Settings, app: Any = None) -> None:
        super().__init__(app, settings.port, lifespan="on")
        self.settings = settings

    def make_app(self) -> Any:
        return self.app if self.app is not None else create_app(self.settings)

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)


@dataclass
class LiveApp:
    server: LiveServer
    url: str
    api_key: str
    app_id: int
    token: str

    def logs(self, **params: Any) -> list[dict[str, Any]]:
        """Every stored log of the app matching `params`, oldest first (follows the cursor)."""
        out: list[dict[str, Any]] = []
        params = {"limit": 1000, **params}
        with self.server.http(headers={"Authorization": f"Bearer {self.token}"}) as http:
            while True:
                page = http.get(f"/api/apps/{self.app_id}/logs", params=params).raise_for_status().json()
                out.extend(page["logs"])
                if not page["next_cursor"]:
                    break
                params["cursor"] = page["next_cursor"]
        return list(reversed(out))


@pytest.fixture
def live_server(make_settings: Callable[..., Settings]) -> Iterator[LiveApp]:
    """A real uvicorn server on a free port with a user, an app (`api_key`) and a personal token."""
    port = free_port()
    settings = make_settings(port=port, public_url=f"http://127.0.0.1:{port}")
    server = LiveServer(settings)
    server.start()
    try:
        token, key, app_id = _provision(settings)
        yield LiveApp(server, server.url, key, app_id, token)
    finally:
        server.stop()


def _provision(settings: Settings) -> tuple[str, str, int]:
    from server.apps import create_app as create_application
    from server.db import DB

    async def go() -> tuple[str, str, int]:
        db = DB(settings.database_url)
        await db.connect()
        try:
            user = await upsert_user(db, issuer="https://issuer.test", sub="live", email="live@example.com")
            token, _ = await create_api_token(db, user, "live")
            app, key, _ = await create_application(db, user, "live-app", None, "test")
            return token, key, int(app["id"])
        finally:
            await db.disconnect()

    return _run(go())

"""`python -m server` (also `sentry-logger-server`): run, migrate, and scripted provisioning."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from server.settings import load_settings

__all__ = ["main"]


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.access_log import quiet_ingest_access_log

    quiet_ingest_access_log()  # uvicorn's logging set-up keeps filters
    overrides = {"host": args.host, "port": args.port}
    if args.no_dashboard:
        overrides["dashboard"] = False
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    os.environ["HOST"], os.environ["PORT"] = settings.host, str(settings.port)
    os.environ["DASHBOARD"] = "true" if settings.dashboard else "false"
    # Absolute, since the dashboard runs from the project root (Reflex reads rxconfig.py there).
    os.environ["DATA_DIR"] = settings.data_dir
    url = f"http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0', '::') else settings.host}:{settings.port}"
    app: Any = "server.asgi:app"
    if args.dev and settings.dashboard:
        from frontend.serve import ROOT

        print(f"sentry-logger (dev mode: restarts and rebuilds on changes) at {url}", flush=True)
        uvicorn.run(
            "frontend.serve:dev_asgi", factory=True, reload=True, host=settings.host, port=settings.port,
            log_level=args.log_level, reload_dirs=[str(ROOT / d) for d in ("frontend", "server", "assets")],
            reload_includes=["*.py", "*.css"], ws_per_message_deflate=False,
        )
        return 0
    if settings.dashboard:
        from frontend.serve import dashboard_asgi, ensure_build

        try:
            ensure_build(settings, force=args.rebuild)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}\n(run with --no-dashboard to serve the API and ingest only)", file=sys.stderr)
            return 1
        app = dashboard_asgi(settings)
        print(f"sentry-logger is running at {url}  (dashboard at {url}/, API under {url}/api, "
              f"ingest at {url}/ingest)", flush=True)
    else:
        print(f"sentry-logger API is running at {url}  (API under {url}/api, ingest at {url}/ingest; "
              "dashboard off)", flush=True)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=args.log_level,
        proxy_headers=True, ws_per_message_deflate=False,
    )
    return 0


async def _migrate() -> int:
    from server.db import DB
    from server.migrate import apply_migrations

    db = DB(load_settings().database_url)
    await db.connect()
    try:
        applied = await apply_migrations(db)
    finally:
        await db.disconnect()
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def _with_user(email: str):  # type: ignore[no-untyped-def]
    from server.accounts import ensure_user_by_email
    from server.db import DB
    from server.migrate import apply_migrations

    settings = load_settings()
    db = DB(settings.database_url)
    await db.connect()
    if settings.migrate_on_start_enabled:
        await apply_migrations(db)
    return settings, db, await ensure_user_by_email(db, email)


async def _apps_create(args: argparse.Namespace) -> int:
    from server.apps import create_app
    from server.errors import ApiError

    settings, db, user = await _with_user(args.owner)
    try:
        app, key, _ = await create_app(db, user, args.name, args.description, args.environment)
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await db.disconnect()
    print(f"created app {app['name']!r} (id {app['id']}) for {user.email}")
    print(f"API key (shown once, store it now): {key}")
    print(f"DSN: {settings.base_url}")
    return 0


async def _tokens_create(args: argparse.Namespace) -> int:
    from server.accounts import create_api_token

    _, db, user = await _with_user(args.user)
    try:
        token, _ = await create_api_token(db, user, args.name or "")
    finally:
        await db.disconnect()
    print(f"personal API token for {user.email} (shown once, store it now): {token}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="sentry-logger server")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the server (dashboard, API, ingest, live tail)")
    run.add_argument("--host", help="listen address (default: HOST setting, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: PORT setting, 8000)")
    run.add_argument("--no-dashboard", action="store_true", help="serve the API and ingest only (also DASHBOARD=false)")
    run.add_argument("--rebuild", action="store_true", help="rebuild the dashboard frontend even if unchanged")
    run.add_argument("--dev", action="store_true", help="restart on source changes, rebuilding the dashboard")
    run.add_argument("--log-level", default="info")
    sub.add_parser("migrate", help="apply pending database migrations")
    apps = sub.add_parser("apps", help="manage apps").add_subparsers(dest="apps_command", required=True)
    create = apps.add_parser("create", help="create an app and print its API key once")
    create.add_argument("--owner", required=True, help="owner's email (the user is created if new)")
    create.add_argument("--name", required=True)
    create.add_argument("--environment", default=None, help="environment label of the first key (default production)")
    create.add_argument("--description", default=None)
    tokens = sub.add_parser("tokens", help="personal API tokens").add_subparsers(dest="tokens_command", required=True)
    tcreate = tokens.add_parser("create", help="create a personal API token and print it once")
    tcreate.add_argument("--user", required=True, help="the user's email (created if new)")
    tcreate.add_argument("--name", default="", help="a label for the token")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "migrate":
            return asyncio.run(_migrate())
        if args.command == "apps":
            return asyncio.run(_apps_create(args))
        return asyncio.run(_tokens_create(args))
    except ValueError as exc:  # bad settings
        print(f"error: {exc}", file=sys.stderr)
        return 2

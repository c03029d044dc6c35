"""Building the dashboard's frontend once, and serving it with the API in one ASGI app.

The frontend build bakes in the address of Reflex's websocket (REFLEX_API_URL): Reflex
swaps the host name for the page's own when it is localhost, and drops the port behind
https, but an http port is fixed at build time. So the build is keyed by a fingerprint of
everything it depends on (the frontend's Python sources, rxconfig.py, Reflex's lock files
and version, the API URL): `ensure_build` rebuilds only when that changed.

Reflex's own downloads do not work offline; `reflex_env` sets what keeps it from reaching
out and points it at the bun installed from the npm registry into `.tools/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from server.settings import Settings

__all__ = ["ROOT", "api_url_for", "build_fingerprint", "dashboard_asgi", "dev_asgi", "ensure_build", "reflex_env"]

ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = ROOT / ".web"
STAMP = WEB_DIR / "sentry-logger-build.json"
BUN_VERSION = "1.4.5"
TOOLS_DIR = ROOT / ".tools"


def api_url_for(settings: Settings) -> str:
    """Where the browser reaches Reflex's websocket: this server's own address."""
    if settings.public_url:
        return settings.base_url
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::", "localhost") else settings.host
    return f"http://{host}:{settings.port}"


def _bun_path() -> Path | None:
    explicit = os.environ.get("REFLEX_BUN_PATH")
    if explicit and Path(explicit).exists():
        return Path(explicit)
    local = TOOLS_DIR / "node_modules" / ".bin" / "bun"
    if local.exists():
        return local
    found = shutil.which("bun")
    return Path(found) if found else None


def _install_bun() -> Path:
    """bun from the npm registry (Reflex's installer downloads from elsewhere)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the dashboard needs bun: install Node.js/npm, or run with --no-dashboard")
    print(f"==> installing bun {BUN_VERSION} from the npm registry into {TOOLS_DIR}", flush=True)
    subprocess.run([npm, "install", "--silent", "--prefix", str(TOOLS_DIR), f"bun@{BUN_VERSION}"], check=True)
    path = TOOLS_DIR / "node_modules" / ".bin" / "bun"
    if not path.exists():
        raise RuntimeError(f"npm installed bun but {path} is missing")
    return path


def reflex_env(settings: Settings) -> dict[str, str]:
    """Environment variables for Reflex: offline-safe, our bun, this server's API URL."""
    env = {
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_CHECK_LATEST_VERSION": "0",
        "REFLEX_HTTP_CLIENT_BIND_ADDRESS": "0.0.0.0",
        "REFLEX_API_URL": api_url_for(settings),
    }
    if "NPM_CONFIG_REGISTRY" not in os.environ and shutil.which("npm"):
        registry = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True, check=False).stdout.strip()
        if registry:
            env["NPM_CONFIG_REGISTRY"] = registry
    bun = _bun_path() or _install_bun()
    env["REFLEX_BUN_PATH"] = str(bun)
    return env


def build_fingerprint(api_url: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"reflex={version('reflex')};api_url={api_url}".encode())
    sources = sorted((ROOT / "frontend").rglob("*.py")) + [ROOT / "rxconfig.py"]
    sources += sorted((ROOT / "reflex.lock").glob("*")) + sorted((ROOT / "assets").rglob("*"))
    for path in sources:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _build_present() -> bool:
    return (WEB_DIR / "build" / "client" / "index.html").exists() or (WEB_DIR / "build" / "client").is_dir()


def ensure_build(settings: Settings, *, force: bool = False, quiet: bool = False) -> bool:
    """Build the frontend unless an identical build is there. Returns whether it built."""
    env = reflex_env(settings)
    fingerprint = build_fingerprint(env["REFLEX_API_URL"])
    if not force and _build_present() and STAMP.exists():
        try:
            if json.loads(STAMP.read_text()).get("fingerprint") == fingerprint:
                return False
        except ValueError:
            pass
    if not quiet:
        print("==> building the dashboard frontend (first run, or the dashboard changed)", flush=True)
    started = time.monotonic()
    child_env = {**os.environ, **env, "DATA_DIR": settings.data_dir, "DATABASE_URL": settings.database_url,
                 "HOST": settings.host, "PORT": str(settings.port)}
    if settings.public_url:
        child_env["PUBLIC_URL"] = settings.public_url
    result = subprocess.run(
        [sys.executable, "-m", "reflex", "export", "--frontend-only", "--no-zip", "--loglevel", "warning"],
        cwd=ROOT, env=child_env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the dashboard failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    STAMP.write_text(json.dumps({"fingerprint": fingerprint, "api_url": env["REFLEX_API_URL"]}))
    if not quiet:
        print(f"==> dashboard built in {time.monotonic() - started:.1f}s", flush=True)
    return True


def dashboard_asgi(settings: Settings) -> Any:
    """The whole product as one ASGI app: compiled pages + Reflex state socket + the API.
    Call `ensure_build` first. Changes the working directory to the project root (Reflex
    reads rxconfig.py and .web/ from there)."""
    os.environ.update(reflex_env(settings))
    os.environ.update({
        "REFLEX_ENV_MODE": "prod",
        "__REFLEX_MOUNT_FRONTEND_COMPILED_APP": "true",
        "__REFLEX_SKIP_COMPILE": "true",
    })
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from frontend import runtime

    runtime.configure(settings)
    from frontend.frontend import app

    return app()


def dev_asgi() -> Any:
    """Factory for `python -m server run --dev`: uvicorn restarts the process when a source
    file changes, and this rebuilds the frontend first when the dashboard changed."""
    from server.settings import load_settings

    settings = load_settings()
    ensure_build(settings)
    return dashboard_asgi(settings)

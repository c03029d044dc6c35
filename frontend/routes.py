"""Every dashboard URL in one place. Starlette routes (/api, /auth, /ingest) are not pages."""

from __future__ import annotations

from urllib.parse import quote, urlencode

__all__ = [
    "APP_HEALTH", "APP_KEYS", "APP_LOGS", "DEVICE_LINK", "HOME", "SIGNIN", "app_health", "app_id_in", "app_keys", "app_logs",
    "signin",
]

HOME = "/"
SIGNIN = "/signin"
APP_LOGS = "/apps/[app_id]/logs"
APP_KEYS = "/apps/[app_id]/keys"
APP_HEALTH = "/apps/[app_id]/health"
# Where `sentry-logger init` sends people (server.device.LINK_PATH, the verification_uri).
DEVICE_LINK = "/sdk/link"

# Server (Starlette) endpoints the dashboard links or posts to: plain anchors and forms,
# never client-side navigation.
AUTH_LOCAL = "/auth/local"
AUTH_OIDC_LOGIN = "/auth/oidc/login"


def app_logs(app_id: int | str, params: dict[str, str] | None = None) -> str:
    query = urlencode({k: v for k, v in (params or {}).items() if v})
    return f"/apps/{app_id}/logs" + (f"?{query}" if query else "")


def app_health(app_id: int | str, params: dict[str, str] | None = None) -> str:
    query = urlencode({k: v for k, v in (params or {}).items() if v})
    return f"/apps/{app_id}/health" + (f"?{query}" if query else "")


def app_keys(app_id: int | str) -> str:
    return f"/apps/{app_id}/keys"


def app_id_in(path: str) -> str:
    """The app id of an /apps/<id>/... path ("" when there is none)."""
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "apps" else ""


def signin(next_path: str) -> str:
    return f"{SIGNIN}?next={quote(next_path, safe='/')}"

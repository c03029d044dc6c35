"""Reflex configuration of the dashboard (`frontend/`).

`python -m server run` sets REFLEX_API_URL to this server's own address before it builds
the frontend (Reflex bakes that address into the build; see frontend/serve.py).
"""

from __future__ import annotations

import reflex as rx

from frontend import styles


def _allowed_origins() -> list[str]:
    """Only this server's own origins may call it from a browser with credentials
    (Reflex's default, "*" with credentials, would let any site read /api as the user)."""
    from frontend import runtime

    settings = runtime.settings()
    port = settings.port
    origins = {settings.base_url, f"http://localhost:{port}", f"http://127.0.0.1:{port}"}
    extra = settings.dashboard_extra_origins
    origins.update(o.strip().rstrip("/") for o in extra.split(",") if o.strip())
    return sorted(origins)


config = rx.Config(
    app_name="frontend",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    cors_allowed_origins=_allowed_origins(),
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color=styles.ACCENT, gray_color=styles.GRAY, radius="medium", scaling="100%")
        )
    ],
    disable_plugins=[rx.plugins.SitemapPlugin],
)

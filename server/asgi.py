"""The ASGI entry point for servers: `uvicorn server.asgi:app`. Settings come from the environment."""

from __future__ import annotations

from server.app import create_app

app = create_app()

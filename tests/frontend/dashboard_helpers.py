"""Steps the browser tests share: signing in, adding an app, reading the one-time key."""

from __future__ import annotations

import secrets
import time
from typing import Any

__all__ = ["add_app", "app_id_from", "close_key_dialog", "log", "sign_in_local", "sign_in_oidc", "unique"]


def sign_in_local(page: Any, path: str = "/") -> None:
    """Open `path` signed out, land on the sign-in page, continue as the local developer."""
    page.goto(path)
    page.wait_for_selector("#signin-local")
    page.click("#signin-local")
    page.wait_for_selector("#user-menu")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def add_app(page: Any, name: str, environment: str = "") -> str:
    """Register an app through the dialog; returns the one-time key, leaves the dialog open."""
    page.click("#add-app")
    page.fill("#app-name", name)
    if environment:
        page.fill("#app-environment", environment)
    page.click("#register-app")
    page.wait_for_function(
        "() => { const k = document.getElementById('sl-one-time-key'); return k && k.value.startsWith('sk_'); }"
    )
    return str(page.input_value("#sl-one-time-key"))


def close_key_dialog(page: Any) -> None:
    page.click("#close-key-dialog")
    page.wait_for_selector("#sl-one-time-key", state="detached")


def app_id_from(page: Any) -> int:
    page.wait_for_url("**/apps/*/logs**")
    return int(page.url.split("/apps/")[1].split("/")[0])


def log(message: str, level: str = "INFO", **fields: Any) -> dict[str, Any]:
    return {"timestamp": fields.pop("timestamp", time.time()), "level": level, "message": message, **fields}


def sign_in_oidc(page: Any, product: Any, sub: str, name: str, path: str = "/") -> None:
    """Open `path` signed out and sign in through the OIDC provider as a new user `sub`."""
    product.oidc.set_user(sub, email=f"{sub}@example.com", email_verified=True, name=name)
    page.goto(path)
    page.wait_for_selector("#signin-oidc")
    page.click("#signin-oidc")
    page.wait_for_url(f"{product.oidc.url}/**")
    page.fill("input[name=sub]", sub)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    page.wait_for_selector("#user-menu")

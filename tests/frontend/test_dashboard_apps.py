"""Add App, the key shown exactly once, and other users' apps staying invisible."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.frontend.conftest import ROOT, Product
from tests.frontend.dashboard_helpers import add_app, app_id_from, close_key_dialog, log, sign_in_local, unique


def test_add_app_validates_then_shows_the_key_once(page: Any, product: Product) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=product.url)
    sign_in_local(page)

    page.click("#add-app")
    page.click("#register-app")
    page.wait_for_selector("#error-name")
    assert "name is required" in page.inner_text("#error-name").lower()
    page.fill("#app-name", "x" * 64 + "y")  # the input stops at 64; the server checks too
    assert len(page.input_value("#app-name")) == 64
    page.keyboard.press("Escape")

    name = unique("shop")
    key = add_app(page, name, environment="prod")
    assert key.startswith("sk_prod_")
    dialog = page.get_by_role("dialog")
    text = dialog.inner_text()
    assert "you will not see it again" in text
    assert f"SENTRY_DSN={product.url}" in text
    assert f"SENTRY_API_KEY={key}" in text
    assert "pip install sentry-logger" in text and "sentry_logger.init()" in text

    page.click("#copy-key")
    page.wait_for_selector("text=Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # The key works at /ingest.
    assert product.ingest(key, [log("first")]).status_code == 202

    close_key_dialog(page)
    app_id = app_id_from(page)
    page.wait_for_selector(f".sidebar-app:has-text('{name}')")
    assert key not in page.content()

    # Never again: not after a reload, not on the Keys tab, not in the back button's page,
    # not in Reflex's persisted state.
    page.reload()
    page.wait_for_selector("#app-title")
    assert key not in page.content()
    page.click("#tab-keys")
    page.wait_for_selector(".key-row")
    assert key not in page.content()
    assert key[:16] in page.inner_text("#keys-table")  # the prefix identifies it
    page.go_back()
    page.wait_for_selector("#app-title")
    assert key not in page.content()
    assert page.url.endswith(f"/apps/{app_id}/logs")
    for state_file in (ROOT / ".states").rglob("*"):
        if state_file.is_file():
            assert key.encode() not in state_file.read_bytes(), state_file


def test_duplicate_name_is_refused_with_a_readable_message(page: Any) -> None:
    sign_in_local(page)
    name = unique("dup")
    add_app(page, name)
    close_key_dialog(page)
    page.click("#add-app")
    page.fill("#app-name", name.upper())
    page.click("#register-app")
    page.wait_for_selector("#error-name")
    assert "already have an app named" in page.inner_text("#error-name")


def test_second_user_cannot_open_the_first_users_app(new_page: Callable[..., Any], product: Product) -> None:
    owner = new_page()
    sign_in_local(owner)
    add_app(owner, unique("private"))
    close_key_dialog(owner)
    app_id = app_id_from(owner)

    sub = unique("mallory")
    product.oidc.set_user(sub, email=f"{sub}@example.com", email_verified=True, name="Mallory")
    other = new_page()
    other.goto(f"/apps/{app_id}/logs")
    other.wait_for_selector("#signin-oidc")
    other.click("#signin-oidc")
    other.wait_for_url(f"{product.oidc.url}/**")
    other.fill("input[name=sub]", sub)
    other.locator("form button[type=submit], form input[type=submit]").first.click()
    other.wait_for_url(f"**/apps/{app_id}/logs")
    other.wait_for_selector("#page-error")
    assert "does not exist, or it is not yours" in other.inner_text("#page-error")
    assert other.locator(".sidebar-app").count() == 0
    other.goto(f"/apps/{app_id}/keys")
    other.wait_for_selector("#page-error")
    assert other.locator(".key-row").count() == 0
    assert "Mallory" in other.inner_text("#user-menu")


def test_phone_width_shows_the_apps_above_the_content(new_page: Callable[..., Any], tmp_path: Path) -> None:
    phone = new_page(width=390, height=844)
    sign_in_local(phone)
    add_app(phone, unique("mobile"))
    close_key_dialog(phone)
    phone.wait_for_selector("#waiting")
    sidebar = phone.locator("#add-app").bounding_box()
    content = phone.locator("#app-title").bounding_box()
    assert sidebar is not None and content is not None
    assert content["y"] > sidebar["y"]
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

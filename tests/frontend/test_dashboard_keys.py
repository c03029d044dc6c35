"""The Keys view: create for another environment, regenerate (old key dead at once), revoke,
rename and delete the app."""

from __future__ import annotations

from typing import Any

from tests.frontend.conftest import Product
from tests.frontend.dashboard_helpers import add_app, app_id_from, close_key_dialog, log, sign_in_local, unique


def _key_in_dialog(page: Any) -> str:
    page.wait_for_function(
        "() => { const k = document.getElementById('sl-one-time-key'); return k && k.value.startsWith('sk_'); }"
    )
    key = str(page.input_value("#sl-one-time-key"))
    close_key_dialog(page)
    return key


def _open_keys(page: Any) -> tuple[str, int]:
    sign_in_local(page)
    key = add_app(page, unique("keys"), environment="prod")
    close_key_dialog(page)
    app_id = app_id_from(page)
    page.click("#tab-keys")
    page.wait_for_selector(".key-row")
    return key, app_id


def test_regenerate_shows_the_new_key_once_and_kills_the_old_one(page: Any, product: Product) -> None:
    old_key, _ = _open_keys(page)
    assert product.ingest(old_key, [log("with the old key")]).status_code == 202

    page.locator(".key-regenerate").first.click()
    page.wait_for_selector("role=alertdialog")
    assert "stops working immediately" in page.inner_text("role=alertdialog")
    page.click("#confirm-action")
    new_key = _key_in_dialog(page)
    assert new_key != old_key and new_key.startswith("sk_prod_")

    refused = product.ingest(old_key, [log("with the old key again")])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert product.ingest(new_key, [log("with the new key")]).status_code == 202
    assert page.locator(".key-row").count() == 1
    assert new_key[:16] in page.inner_text("#keys-table")
    assert new_key not in page.content()


def test_create_a_key_for_another_environment_then_revoke_it(page: Any, product: Product) -> None:
    _open_keys(page)
    page.fill("#new-key-environment", "Not valid!")
    page.click("#create-key")
    page.wait_for_selector("#create-key-error")
    assert "environment must be" in page.inner_text("#create-key-error").lower()

    page.fill("#new-key-environment", "staging")
    page.click("#create-key")
    staging_key = _key_in_dialog(page)
    assert staging_key.startswith("sk_staging_")
    page.wait_for_function("() => document.querySelectorAll('.key-row').length === 2")
    assert product.ingest(staging_key, [log("from staging")]).status_code == 202

    page.locator(".key-row", has_text="staging").locator(".key-revoke").click()
    page.click("#confirm-action")
    page.wait_for_function("() => document.querySelectorAll('.key-row').length === 1")
    assert product.ingest(staging_key, [log("from staging again")]).status_code == 401


def test_rename_then_delete_the_app(page: Any, product: Product) -> None:
    key, app_id = _open_keys(page)
    new_name = unique("renamed")
    page.click("#rename-app")
    page.fill("#rename-input", "")
    page.click("#rename-save")
    page.wait_for_selector("text=Name is required")
    page.fill("#rename-input", new_name)
    page.click("#rename-save")
    page.wait_for_selector(f"#app-title:has-text('{new_name}')")
    page.wait_for_selector(f".sidebar-app:has-text('{new_name}')")

    page.click("#delete-app")
    assert page.is_disabled("#confirm-action")  # until the name is typed
    page.fill("#confirm-name", new_name)
    page.click("#confirm-action")
    page.wait_for_url(lambda url: f"/apps/{app_id}/" not in url)
    page.wait_for_selector("#user-menu")
    assert page.locator(f".sidebar-app:has-text('{new_name}')").count() == 0
    assert product.ingest(key, [log("after delete")]).status_code == 401

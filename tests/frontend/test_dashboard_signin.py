"""Signing in: signed-out visitors land on the sign-in page and come back where they were
going; local developer sign-in; Google-style sign-in against a real (local) OIDC provider;
sign-out ends the session for the open tab."""

from __future__ import annotations

from typing import Any

from tests.frontend.conftest import Product
from tests.frontend.dashboard_helpers import sign_in_local, unique


def test_signed_out_visitor_lands_on_signin_and_returns_to_target(page: Any) -> None:
    page.goto("/apps/12345/logs?level=ERROR")
    page.wait_for_selector("#signin-local")
    assert "/signin?next=" in page.url
    assert page.is_visible("#signin-oidc")
    assert "Sign in with Google" in page.inner_text("#signin-oidc")

    page.click("#signin-local")
    page.wait_for_url("**/apps/12345/logs?level=ERROR")
    page.wait_for_selector("#page-error")
    # Someone else's (or no) app: the same answer as the API's 404.
    assert "does not exist, or it is not yours" in page.inner_text("#page-error")
    assert "Local developer" in page.inner_text("#user-menu")


def test_local_sign_in_then_sign_out(page: Any) -> None:
    sign_in_local(page)
    page.click("#user-menu")
    page.click("#sign-out")
    page.wait_for_selector("#signin-local")
    # The session is gone server-side: the dashboard asks to sign in again.
    page.goto("/")
    page.wait_for_selector("#signin-local")
    assert "/signin" in page.url


def test_oidc_sign_in_through_the_provider(page: Any, product: Product) -> None:
    sub = unique("oidc-user")
    email = f"{sub}@example.com"
    product.oidc.set_user(sub, email=email, email_verified=True, name="Olivia OIDC")
    page.goto("/apps/777/keys")
    page.wait_for_selector("#signin-oidc")
    page.click("#signin-oidc")
    # The provider's own authorization form (oidc-provider-mock): the subject to sign in as.
    page.wait_for_url(f"{product.oidc.url}/**")
    page.fill("input[name=sub]", sub)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    page.wait_for_url("**/apps/777/keys")
    page.wait_for_selector("#user-menu")
    assert "Olivia OIDC" in page.inner_text("#user-menu")

"""The one-process server must not inherit Reflex's permissive CORS default ("*" with
credentials), which would let any other origin read /api as the signed-in user."""

from __future__ import annotations

from tests.frontend.conftest import Product


def test_other_origins_get_no_cors_grant(product: Product) -> None:
    with product.http() as http:
        preflight = http.options("/api/me", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET",
        })
        assert preflight.headers.get("access-control-allow-origin") is None
        simple = http.get("/api/me", headers={"Origin": "http://evil.example", "Cookie": "sl_session=x"})
        assert simple.headers.get("access-control-allow-origin") is None


def test_the_servers_own_origin_is_allowed(product: Product) -> None:
    with product.http() as http:
        preflight = http.options("/api/me", headers={
            "Origin": product.url, "Access-Control-Request-Method": "GET",
        })
        assert preflight.headers.get("access-control-allow-origin") == product.url

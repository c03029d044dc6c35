"""The Health view: cards and charts for an app fed by the real SDK with its ASGI request
middleware, live refresh, links into the logs view, and the sidebar dot by the same rule."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import sentry_logger
from sentry_logger.asgi import SentryLoggerMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.frontend.conftest import Product
from tests.frontend.dashboard_helpers import add_app, app_id_from, close_key_dialog, log, sign_in_local, unique


async def _item(request: Request) -> JSONResponse:
    await asyncio.sleep(0.002 * (int(request.path_params["item_id"]) % 5))
    return JSONResponse({"id": request.path_params["item_id"]})


async def _boom(request: Request) -> JSONResponse:
    raise RuntimeError("inventory service unreachable")


def _shop() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", _item), Route("/boom", _boom)],
                     middleware=[Middleware(SentryLoggerMiddleware)])


@pytest.fixture
def fed_app(page: Any, product: Product) -> tuple[Any, str, int]:
    """A new app that received 30 requests and 3 failures through the SDK's middleware."""
    sign_in_local(page)
    key = add_app(page, unique("health"), environment="prod")
    close_key_dialog(page)
    app_id = app_id_from(page)
    client = sentry_logger.init(api_key=key, dsn=product.url, service="shop-api", spool=False)
    # The test client's own request lines would be captured too: only the shop's records count.
    quiet = [logging.getLogger(name) for name in ("httpx", "httpx2")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    try:
        with TestClient(_shop(), raise_server_exceptions=False) as shop:
            for i in range(30):
                assert shop.get(f"/items/{i}").status_code == 200
            for _ in range(3):
                assert shop.get("/boom").status_code == 500
        assert client.flush(timeout=10)
    finally:
        sentry_logger.shutdown()
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return page, key, app_id


def test_health_view_shows_cards_and_charts_and_links_to_logs(fed_app: tuple[Any, str, int], product: Product) -> None:
    page, key, app_id = fed_app
    page.click("#tab-health")
    page.wait_for_url(f"**/apps/{app_id}/health**")
    card = page.locator(".health-card[data-service=shop-api]")
    card.wait_for()
    # 3 errors in 33 records: 9.1 % >= HEALTH_DEGRADED_ERROR_RATE (5 %)
    assert card.get_attribute("data-status") == "degraded"
    text = card.inner_text()
    assert "9.1%" in text and "33" in text and "ms" in text and "UTC" in text
    page.wait_for_selector(".sidebar-app.active .health-dot[data-health=errors]")
    # Charts: stacked volume bars, the error-rate line, p50 and p95 latency lines.
    page.wait_for_selector("#chart-volume .recharts-bar-rectangle")
    page.wait_for_selector("#chart-error-rate .recharts-line-dot")
    page.wait_for_function("() => document.querySelectorAll('#chart-latency .recharts-line-curve').length === 2")
    page.wait_for_selector("#chart-latency .recharts-line-dot")
    assert page.inner_text("#latency-service").strip() == "shop-api"
    assert "inventory service unreachable" in page.inner_text("#top-errors") or "/boom" in page.inner_text("#top-errors")

    # Live: a new service appears without a reload.
    assert product.ingest(key, [log(f"job {i} done", service="worker") for i in range(12)]).status_code == 202
    page.locator(".health-card[data-service=worker]").wait_for(timeout=20_000)
    assert page.locator(".health-card[data-service=worker]").get_attribute("data-status") == "healthy"

    # The range picker follows the logs view's presets and goes into the URL.
    page.click("#health-range")
    page.get_by_role("option", name="Last hour").click()
    page.wait_for_function("() => window.location.search === '?range=1h'")
    page.locator(".health-card[data-service=shop-api]").wait_for()

    # A card opens the logs view filtered to its service and range.
    page.locator(".health-card[data-service=shop-api]").click()
    page.wait_for_url("**/logs?service=shop-api&range=1h")
    page.wait_for_selector(".log-row")


def test_chart_point_opens_the_logs_of_its_bucket(fed_app: tuple[Any, str, int]) -> None:
    page, _, app_id = fed_app
    page.goto(f"/apps/{app_id}/health?range=15m")
    bar = page.locator("#chart-volume .recharts-bar-rectangle").last
    bar.wait_for()
    bar.click()
    page.wait_for_url("**/logs?range=custom&since=*&until=*&level=*")
    page.wait_for_selector(".log-row")

"""The Logs view: the live stream (fed by the real SDK), filters in the URL, pause/resume,
expanding a row; and the README's screenshot."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import sentry_logger

from tests.frontend.conftest import ROOT, Product
from tests.frontend.dashboard_helpers import (
    add_app,
    app_id_from,
    close_key_dialog,
    log,
    sign_in_local,
    sign_in_oidc,
    unique,
)


def _rows(page: Any) -> list[str]:
    return [str(t) for t in page.locator(".log-row .log-message").all_inner_texts()]


def _wait_rows(page: Any, expected: set[str]) -> None:
    """Until the visible messages are exactly `expected` (the page updates asynchronously)."""
    page.wait_for_function(
        "(expected) => { const m = [...document.querySelectorAll('.log-row .log-message')].map(e => e.innerText);"
        " return m.length === expected.length && expected.every(x => m.includes(x)); }",
        arg=sorted(expected),
    )


def _choose(page: Any, trigger: str, option: str) -> None:
    page.click(trigger)
    page.get_by_role("option", name=option).click()


@pytest.fixture
def fresh_app(page: Any) -> tuple[Any, str, int]:
    """Signed in, with a new app whose (empty) Logs view is open; returns (page, key, app id)."""
    sign_in_local(page)
    key = add_app(page, unique("logs"), environment="prod")
    close_key_dialog(page)
    app_id = app_id_from(page)
    page.wait_for_selector("#waiting")
    return page, key, app_id


def test_logs_sent_with_the_sdk_appear_live(fresh_app: tuple[Any, str, int], product: Product) -> None:
    page, key, _ = fresh_app
    assert "pip install sentry-logger" in page.inner_text("body")
    client = sentry_logger.init(api_key=key, dsn=product.url, service="checkout", spool=False)
    try:
        shop = logging.getLogger("shop.payments")
        shop.warning("card declined for order %s", 1041, extra={"order_id": 1041})
        try:
            raise ValueError("bad card number")
        except ValueError:
            shop.exception("payment failed for order 1042")
        assert client.flush(timeout=10)
    finally:
        sentry_logger.shutdown()

    # The empty state turns into the live view by itself, without a reload.
    page.wait_for_selector("text=payment failed for order 1042")
    page.wait_for_selector("text=card declined for order 1041")
    assert page.locator("#waiting").count() == 0
    assert page.inner_text("#live-status").strip() == "Live"
    # The sidebar's dot: errors in the last five minutes.
    page.wait_for_selector(".sidebar-app.active .health-dot[data-health=errors]")

    page.locator(".log-row", has_text="payment failed for order 1042").locator(".log-message").click()
    page.wait_for_selector(".log-detail")
    detail = page.inner_text(".log-detail")
    assert "ValueError: bad card number" in detail
    assert "Traceback" in detail
    page.locator(".log-row", has_text="card declined").locator(".log-message").click()
    page.wait_for_selector(".log-detail:has-text('order_id')")
    assert '"order_id": 1041' in page.inner_text(".log-detail")


def test_level_search_service_and_time_range_narrow_the_list(
    fresh_app: tuple[Any, str, int], product: Product
) -> None:
    page, key, app_id = fresh_app
    two_days_ago = time.time() - 2 * 86400
    response = product.ingest(key, [
        log("order created", "INFO", service="web"),
        log("payment failed: card declined", "ERROR", service="web"),
        log("slow query on orders", "WARNING", service="worker"),
        log("payment retried", "INFO", service="worker"),
        log("nightly report archived", "INFO", service="worker", timestamp=two_days_ago),
    ])
    assert response.json()["accepted"] == 5
    recent = {"order created", "payment failed: card declined", "slow query on orders", "payment retried"}
    _wait_rows(page, recent)  # the last 24 hours by default

    _choose(page, "#filter-range", "Last 7 days")
    _wait_rows(page, recent | {"nightly report archived"})
    page.wait_for_url("**range=7d**")

    _choose(page, "#filter-level", "Error and up")
    _wait_rows(page, {"payment failed: card declined"})
    page.wait_for_url("**level=ERROR**")

    _choose(page, "#filter-level", "All levels")
    page.fill("#filter-q", "payment")
    page.click("#filter-apply")
    _wait_rows(page, {"payment failed: card declined", "payment retried"})
    page.wait_for_url("**q=payment**")

    page.fill("#filter-service", "worker")
    page.click("#filter-apply")
    _wait_rows(page, {"payment retried"})
    page.wait_for_url("**service=worker**")

    # The URL is the view: opening it again shows the same filters and lines.
    shared = page.url
    page.goto(shared)
    _wait_rows(page, {"payment retried"})
    assert page.input_value("#filter-q") == "payment"
    assert page.input_value("#filter-service") == "worker"

    page.click("text=Clear filters")
    _wait_rows(page, recent)

    # A custom range that holds only the old line (read as UTC, like the times shown).
    _choose(page, "#filter-range", "Custom range")
    start = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(two_days_ago - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(two_days_ago + 3600))
    page.fill("#filter-since", start)
    page.fill("#filter-until", end)
    page.click("#filter-range-apply")
    _wait_rows(page, {"nightly report archived"})
    page.wait_for_url("**range=custom**")
    assert page.is_visible("#live-note")  # a range that ended is not live
    assert f"/apps/{app_id}/logs" in page.url


def test_pause_counts_new_lines_and_resume_catches_up(fresh_app: tuple[Any, str, int], product: Product) -> None:
    page, key, _ = fresh_app
    product.ingest(key, [log("before pause")])
    _wait_rows(page, {"before pause"})

    page.click("#live-pause")
    page.wait_for_selector("#live-resume")
    product.ingest(key, [log(f"while paused {i}") for i in range(3)])
    page.wait_for_selector("#new-count:has-text('3 new lines')")
    assert _rows(page) == ["before pause"]
    product.ingest(key, [log("while paused 3")])
    page.wait_for_selector("#new-count:has-text('4 new lines')")

    page.click("#live-resume")
    _wait_rows(page, {"before pause", *(f"while paused {i}" for i in range(4))})
    assert page.locator("#new-count").count() == 0
    assert _rows(page)[0] == "while paused 3"  # newest first, nothing missing, nothing twice

    product.ingest(key, [log("after resume")])
    _wait_rows(page, {"before pause", "after resume", *(f"while paused {i}" for i in range(4))})


def test_screenshot_of_the_logs_view(page: Any, product: Product) -> None:
    """docs/screenshot-logs.png, as the README shows it (a new user, so only their apps show)."""
    sign_in_oidc(page, product, unique("ada"), "Ada Lovelace")
    for other in ("billing-worker", "marketing-site"):
        add_app(page, other)
        close_key_dialog(page)
    key = add_app(page, "checkout", environment="prod")
    close_key_dialog(page)
    page.wait_for_selector("#waiting")
    now = time.time()
    lines = [
        log("GET /api/orders 200 in 38 ms", "INFO", service="web", timestamp=now - 50),
        log("cache miss for product 8812, loading from database", "DEBUG", service="web", timestamp=now - 44),
        log("order 1041 created for customer 77", "INFO", service="web", attributes={"order_id": 1041},
            timestamp=now - 40),
        log("payment provider answered slowly (2.4 s)", "WARNING", service="payments", timestamp=now - 33),
        log("payment failed for order 1042: card declined", "ERROR", service="payments", timestamp=now - 30,
            attributes={"order_id": 1042, "provider": "stripe", "retry": True},
            exception={"type": "CardDeclined", "value": "card declined",
                       "traceback": 'Traceback (most recent call last):\n  File "payments/charge.py", line 88, '
                                    'in charge\n    result = provider.charge(card, amount)\n'
                                    'CardDeclined: card declined'}),
        log("email receipt queued for order 1041", "INFO", service="worker", timestamp=now - 21),
        log("GET /api/orders/1042 404 in 4 ms", "INFO", service="web", timestamp=now - 12),
        log("inventory sync finished: 1,204 products", "INFO", service="worker", timestamp=now - 5),
    ]
    assert product.ingest(key, lines).json()["accepted"] == len(lines)
    page.wait_for_selector("text=inventory sync finished")
    page.locator(".log-row", has_text="payment failed for order 1042").locator(".log-message").click()
    page.wait_for_selector(".log-detail:has-text('CardDeclined')")
    page.mouse.move(0, 0)
    (ROOT / "docs").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "docs" / "screenshot-logs.png"))


def test_a_lost_connection_says_so_and_the_live_view_recovers(page: Any, product: Product) -> None:
    """The server goes away and comes back (a restart): the page says it is reconnecting,
    reconnects by itself, and the live view carries on without a reload."""
    sign_in_local(page)
    key = add_app(page, unique("restart"))
    close_key_dialog(page)
    page.wait_for_selector("#waiting")
    product.ingest(key, [log("before the restart")])
    _wait_rows(page, {"before the restart"})

    product.stop()
    try:
        page.wait_for_selector("#connection-lost")
        assert "reconnecting" in page.inner_text("#connection-lost").lower()
    finally:
        product.start()
    page.wait_for_selector("#connection-lost", state="detached", timeout=30_000)
    product.ingest(key, [log("after the restart")])
    page.wait_for_selector("text=after the restart")
    assert page.url.endswith("/logs")


def test_load_older_pages_back_through_history(page: Any, product: Product) -> None:
    sign_in_local(page)
    key = add_app(page, unique("history"))
    close_key_dialog(page)
    app_id = app_id_from(page)
    now = time.time()
    lines = [log(f"line {i:03d}", timestamp=now - 300 + i) for i in range(250)]
    assert product.ingest(key, lines).json()["accepted"] == 250
    page.goto(f"/apps/{app_id}/logs")  # history, not live: the first page holds the newest 200
    page.wait_for_function("() => document.querySelectorAll('.log-row').length === 200")
    assert _rows(page)[0] == "line 249"
    page.click("#load-older")
    page.wait_for_function("() => document.querySelectorAll('.log-row').length === 250")
    assert _rows(page)[-1] == "line 000"
    assert page.locator("#load-older").count() == 0

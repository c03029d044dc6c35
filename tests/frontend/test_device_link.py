"""The /sdk/link page in a real browser with the real `sentry-logger init` as a subprocess:
signed out -> sign-in -> back to the request, which shows the app, environment and code;
visiting authorizes nothing; Authorize delivers the key to the terminal (then `init()` with
no arguments sends a log that arrives); Deny ends the terminal with exit code 4; a wrong code
and the manual code entry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.frontend.conftest import Product
from tests.frontend.dashboard_helpers import sign_in_local, unique
from tests.sdk import test_cli_init
from tests.sdk.test_cli_init import InitRun

init_cli = test_cli_init.init_cli  # the fixture: `sentry-logger init` runs, killed at teardown if still running


def _session_http(page: Any, product: Product) -> Any:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return product.http(cookies=cookies)


def test_authorize_in_the_browser(page: Any, product: Product, init_cli: Callable[..., InitRun], tmp_path: Path) -> None:
    name = unique("cli-app")
    config = tmp_path / "config.json"
    run = init_cli(["--app-name", name, "--environment", "staging", "--dsn", product.url, "--no-browser"], config)
    code = run.code()

    page.goto(f"/sdk/link?code={code}")
    page.wait_for_selector("#signin-local")  # signed out: sign in first, then come back
    page.click("#signin-local")
    page.wait_for_url(re.compile(rf"/sdk/link/?\?code={code}$"))
    page.wait_for_selector("#device-authorize")
    assert page.inner_text("#device-code") == code
    assert page.inner_text("#device-app-name") == name
    assert page.inner_text("#device-environment") == "staging"
    with _session_http(page, product) as http:
        # Visiting the link alone authorizes nothing.
        assert name not in [a["name"] for a in http.get("/api/apps").json()["apps"]]

        page.click("#device-authorize")
        page.wait_for_selector("#device-result")
        assert "Authorized" in page.inner_text("#device-result")
        rc, out, err = run.finish()
        assert rc == 0, err
        profile = json.loads(config.read_text())["profiles"][f"{name}-staging"]
        assert profile["dsn"] == product.url and profile["api_key"] not in out + err

        marker = f"browser-linked {uuid.uuid4().hex}"
        child = ("import logging, sentry_logger\nsentry_logger.init()\n"
                 f"logging.getLogger('shop').error({marker!r})\nsentry_logger.shutdown(timeout=10)\n")
        subprocess.run([sys.executable, "-c", child], check=True, env={**run.env, "SENTRY_LOGGER_SPOOL": "0"},
                       timeout=60)
        app_id = next(a["id"] for a in http.get("/api/apps").json()["apps"] if a["name"] == name)
        logs = http.get(f"/api/apps/{app_id}/logs", params={"q": marker}).json()["logs"]
        assert [r["message"] for r in logs] == [marker]

    # The code is single-use: opening the link again says so.
    page.goto(f"/sdk/link?code={code}")
    page.wait_for_selector("#device-error")
    assert "already used" in page.inner_text("#device-error")


def test_deny_in_the_browser(page: Any, product: Product, init_cli: Callable[..., InitRun], tmp_path: Path) -> None:
    sign_in_local(page)
    config = tmp_path / "config.json"
    run = init_cli(["--app-name", unique("denied"), "--dsn", product.url, "--no-browser"], config)
    page.goto(f"/sdk/link?code={run.code()}")
    page.click("#device-deny")
    page.wait_for_selector("#device-result")
    assert "Denied" in page.inner_text("#device-result")
    rc, _, err = run.finish()
    assert rc == 4 and "denied" in err
    assert not config.exists()


def test_wrong_code_and_typed_code(page: Any, product: Product, init_cli: Callable[..., InitRun], tmp_path: Path) -> None:
    sign_in_local(page)
    page.goto("/sdk/link?code=BBBB-BBBB")
    page.wait_for_selector("#device-error")
    assert "No sign-in request has this code" in page.inner_text("#device-error")

    run = init_cli(["--app-name", unique("typed"), "--dsn", product.url, "--no-browser"], tmp_path / "c.json")
    code = run.code()
    page.goto("/sdk/link")
    page.fill("#device-code-input", code.lower().replace("-", ""))
    page.click("#device-code-submit")
    page.wait_for_selector("#device-authorize")
    assert page.inner_text("#device-code") == code
    run.process.terminate()
    run.finish()

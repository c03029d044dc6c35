"""``sentry-logger init``: link this terminal to an account in the browser and save the key.

The server side is the device authorization flow of docs/device-flow.md (after RFC 8628):
start a request, show the code and the link (and open the browser), poll until the person
approves or denies it, then merge the key into the config file as a profile. The API key
and the device code are never printed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
import webbrowser
from collections.abc import Mapping
from typing import Any, TextIO

import httpx

from .config import config_path, load_config, write_profile
from .errors import ConfigurationError
from .options import ENV_VARS, key_hint

__all__ = ["EXIT_CODES", "add_arguments", "cmd_init"]

# Exit codes of `sentry-logger init` (also in sdk/README.md).
EXIT_CODES = {"ok": 0, "error": 1, "usage": 2, "unreachable": 3, "denied": 4, "expired": 5, "interrupted": 130}
_SPINNER = "|/-\\"
_GIVE_UP_UNREACHABLE_S = 30.0  # the server went away while we waited: stop after this long without an answer


class _Outcome(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-name", required=True, help="the app to link (created in your account if new)")
    parser.add_argument("--environment", help="environment of the new key (default: the server's, production)")
    parser.add_argument("--dsn", help="server base URL (default: SENTRY_DSN, then the config file)")
    parser.add_argument("--profile", help="config file profile to write (default: APP or APP-ENVIRONMENT)")
    parser.add_argument("--no-browser", action="store_true", help="only print the link, do not open a browser")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each server answer")


def _server_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    dsn = args.dsn or env.get(ENV_VARS["dsn"])
    if not dsn:
        chosen = load_config(config_path(env)).select(args.profile)
        dsn = chosen.dsn if chosen else None
    if not dsn or not re.match(r"^https?://[^/\s]+", dsn):
        raise ConfigurationError(
            "no server URL: pass --dsn https://your-sentry-logger-server (or set SENTRY_DSN)" if not dsn
            else f"--dsn must be the server's http(s) base URL, got {dsn!r}")
    return dsn.rstrip("/").removesuffix("/ingest")


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    if isinstance(error, dict):
        return error
    return {"code": f"http_{response.status_code}", "message": f"HTTP {response.status_code}"}


def _start(http: httpx.Client, dsn: str, app_name: str, environment: str | None) -> dict[str, Any]:
    body = {"app_name": app_name} | ({"environment": environment} if environment else {})
    try:
        response = http.post(f"{dsn}/sdk/device/start", json=body)
    except httpx.HTTPError as exc:
        raise _Outcome("unreachable", f"cannot reach the server at {dsn} ({type(exc).__name__}: {exc}). "
                       "Check --dsn and that the server is running.") from None
    if response.status_code != 200:
        error = _error_of(response)
        code = "usage" if response.status_code == 422 else "error"
        raise _Outcome(code, f"the server refused to start the sign-in: {error.get('message')}")
    data: dict[str, Any] = response.json()
    return data


def _wait(seconds: float, out: TextIO, spinner: itertools.cycle[str] | None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if spinner is not None:
            out.write(f"\r{next(spinner)} Waiting for approval in the browser... ")
            out.flush()
        time.sleep(min(0.1, left) if spinner is not None else left)


def _poll(http: httpx.Client, dsn: str, started: dict[str, Any], out: TextIO) -> dict[str, Any]:
    """Poll until the key arrives; raises _Outcome for every other ending."""
    interval = float(started.get("interval") or 5)
    deadline = time.monotonic() + float(started.get("expires_in") or 600) + 5
    spinner = itertools.cycle(_SPINNER) if out.isatty() else None
    unreachable_since: float | None = None
    while True:
        _wait(max(interval, 1.0), out, spinner)
        if time.monotonic() > deadline:
            raise _Outcome("expired", "the code expired before it was approved. Run `sentry-logger init` again.")
        try:
            # POST keeps the device code out of proxies' access logs (a GET form exists too).
            response = http.post(f"{dsn}/sdk/device/poll", json={"device_code": started["device_code"]})
        except httpx.HTTPError as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > _GIVE_UP_UNREACHABLE_S:
                raise _Outcome("unreachable", f"lost the server at {dsn} while waiting ({type(exc).__name__}). "
                               "Nothing was saved; run `sentry-logger init` again.") from None
            continue
        unreachable_since = None
        if response.status_code == 200:
            data: dict[str, Any] = response.json()
            return data
        error = _error_of(response)
        code = error.get("code")
        if code == "authorization_pending":
            continue
        if code == "slow_down":
            interval = float(error.get("interval") or interval + 5)
        elif code == "access_denied":
            raise _Outcome("denied", "the request was denied in the browser. Nothing was saved.")
        elif code == "expired_token":
            raise _Outcome("expired", f"{error.get('message')}. Nothing was saved.")
        elif response.status_code >= 500 or response.status_code == 429:
            continue  # a server restarting or busy: keep waiting within the code's lifetime
        else:
            raise _Outcome("error", f"the server answered: {error.get('message')}")


def _profile_name(app: str, environment: str, explicit_env: bool) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", app.lower()).strip("-") or "default"
    return f"{slug}-{environment}" if explicit_env else slug


def cmd_init(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    out = sys.stderr  # progress and the spinner; the result summary goes to stdout
    try:
        dsn = _server_url(args, env)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CODES["usage"]
    http = httpx.Client(timeout=args.timeout, follow_redirects=False)
    try:
        started = _start(http, dsn, args.app_name, args.environment)
        print(f"To link this terminal to your sentry-logger account, open\n\n    {started['verification_uri']}\n\n"
              f"and enter the code  {started['user_code']}\n\n(or open {started['verification_uri_complete']})",
              flush=True)
        if not args.no_browser and _open_browser(started["verification_uri_complete"]):
            print("Opened your browser. Check that the code matches, then click Authorize.", flush=True)
        granted = _poll(http, dsn, started, out)
    except _Outcome as outcome:
        _clear(out)
        print(f"error: {outcome.message}", file=sys.stderr)
        return EXIT_CODES[outcome.code]
    except KeyboardInterrupt:
        _clear(out)
        print("\nCancelled. Nothing was saved.", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    finally:
        http.close()
    _clear(out)
    return _save(args, env, dsn, granted)


def _open_browser(url: str) -> bool:
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


def _clear(out: TextIO) -> None:
    if out.isatty():
        out.write("\r\033[K")
        out.flush()


def _save(args: argparse.Namespace, env: Mapping[str, str], dsn: str, granted: dict[str, Any]) -> int:
    app_name, environment = granted["app"]["name"], granted["environment"]
    profile = args.profile or _profile_name(app_name, environment, bool(args.environment))
    path = config_path(env)
    try:
        # The URL this terminal reached the server at (the server's own PUBLIC_URL may not work from here).
        write_profile(profile, {"api_key": granted["api_key"], "dsn": dsn,
                                "app": app_name, "environment": environment}, make_default=True, path=path)
    except (OSError, ConfigurationError) as exc:
        print(f"error: approved, but the key could not be saved to {path}: {exc}", file=sys.stderr)
        return EXIT_CODES["error"]
    print(f"\nLinked: app {app_name!r}, environment {environment!r}, key {key_hint(granted['api_key'])}\n"
          f"Saved as profile {profile!r} (the default) in {path}\n\n"
          "Next: sentry_logger.init() with no arguments now uses it. Check the connection with:\n\n"
          "    sentry-logger test\n")
    shadowing = [var for name, var in ENV_VARS.items() if name in ("api_key", "dsn") and env.get(var)]
    if env.get("SENTRY_PROFILE") and env["SENTRY_PROFILE"] != profile:
        shadowing.append("SENTRY_PROFILE")
    if shadowing:
        print(f"Note: {', '.join(shadowing)} set in this environment win(s) over the config file.")
    return EXIT_CODES["ok"]

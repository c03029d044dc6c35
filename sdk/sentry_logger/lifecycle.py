"""``init()``, ``flush()``, ``shutdown()``: the process-wide client.

One client per process. ``init()`` resolves and validates the configuration
(raising ``ConfigurationError`` on a missing or malformed key or DSN), builds
the client and attaches its handler to the root logger. It makes no network
call: an unreachable server shows up as one warning on the ``sentry_logger``
logger when the first batch fails, never as an exception.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx

from .client import Client, ClientOptions
from .errors import ConfigurationError
from .options import resolve

__all__ = ["flush", "get_client", "init", "shutdown", "stats"]

_client: Client | None = None
_lock = threading.Lock()
_hooks_installed = False
_log = logging.getLogger("sentry_logger")


def init(
    api_key: str | None = None,
    dsn: str | None = None,
    *,
    service: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    level: int = logging.INFO,
    profile: str | None = None,
    debug: bool | None = None,
    spool: bool | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    options: ClientOptions | None = None,
    http_transport: httpx.BaseTransport | None = None,
    **option_overrides: Any,
) -> Client:
    """Configure the SDK and start capturing ``logging`` records.

    Each setting comes from the argument, else ``SENTRY_API_KEY`` /
    ``SENTRY_DSN`` / ``SENTRY_ENVIRONMENT`` / ``SENTRY_RELEASE`` /
    ``SENTRY_SERVICE``, else the config file profile (``profile=`` or
    ``SENTRY_PROFILE``, else its ``default_profile``). ``environment``
    defaults to the label in the API key, ``service`` to the script name.

    Records at ``level`` and above reaching the root logger are captured
    (the root logger's level is lowered to ``level`` if it was higher).
    Further keyword arguments override ``ClientOptions`` fields, e.g.
    ``batch_size=50, flush_interval=1.0, max_queue_records=5000``.
    Calling ``init()`` again replaces the previous client (its pending records
    are flushed first), so nothing is sent twice.

    Raises ``ConfigurationError`` when no valid key or DSN can be found.
    """
    global _client
    config = resolve(api_key, dsn, environment=environment, release=release, service=service, profile=profile)
    debug = _env_flag("SENTRY_LOGGER_DEBUG", False) if debug is None else debug
    _configure_sdk_logger(debug)
    opts = options or ClientOptions()
    unknown = set(option_overrides) - {f.name for f in fields(ClientOptions)}
    if unknown:
        raise ConfigurationError(
            f"sentry-logger: unknown init() option(s) {', '.join(sorted(unknown))}; "
            f"valid options: {', '.join(f.name for f in fields(ClientOptions))}"
        )
    spool_enabled = _env_flag("SENTRY_LOGGER_SPOOL", opts.spool) if spool is None else spool
    opts = replace(opts, spool=spool_enabled, **option_overrides)
    if spool_dir is not None:
        opts = replace(opts, spool_dir=Path(spool_dir))
    with _lock:
        _install_process_hooks()
        previous, _client = _client, None
        if previous is not None:
            previous.close()
        client = Client(config, opts, http_transport=http_transport)
        client.install(level)
        _client = client
    _log.debug("sentry-logger: initialised for %s (key %s, environment %s, service %s, spool %s)",
               config.dsn, config.key_prefix, config.environment, config.service,
               client.spool.directory if client.spool else "off")
    return client


def get_client() -> Client | None:
    """The client installed by ``init()``, if any."""
    return _client


def flush(timeout: float = 2.0) -> bool:
    """Deliver everything logged so far; False if ``timeout`` seconds were not enough."""
    client = _client
    return client.flush(timeout) if client is not None else True


def shutdown(timeout: float | None = None) -> None:
    """Flush (default budget: ``shutdown_timeout``, 2 s), stop the worker and detach the handler."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close(timeout)


def stats() -> dict[str, Any]:
    """Sent/dropped/retried/spooled counters and buffer occupancy of the current client."""
    client = _client
    return client.stats() if client is not None else {}


def _at_exit() -> None:
    client = _client
    if client is not None:
        client.close(at_exit=True)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    client = _client
    if client is None:
        return
    client.after_fork_in_child()
    # multiprocessing children leave through os._exit, skipping atexit, and clear
    # multiprocessing's finalizers when they start: register ours from its
    # after-fork hook, which runs after that clearing.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        try:
            mp_util.register_after_fork(client, _register_mp_finalizer)
        except Exception:
            pass


def _register_mp_finalizer(client: Client) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(client, _at_exit, exitpriority=100)


def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_sdk_logger(debug: bool) -> None:
    """The SDK's own logger: to stderr, warnings only unless ``debug``; never propagated."""
    _log.propagate = False
    if not _log.handlers:
        _log.addHandler(_StderrHandler())
    _log.setLevel(logging.DEBUG if debug else logging.WARNING)

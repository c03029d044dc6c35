"""sentry-logger: ship Python ``logging`` records to a self-hosted sentry-logger server.

    import logging, sentry_logger
    sentry_logger.init()          # SENTRY_API_KEY / SENTRY_DSN or the config file
    logging.info("hello", extra={"order_id": 42})
"""

from __future__ import annotations

from ._version import __version__
from .asgi import SentryLoggerMiddleware
from .client import Client, ClientOptions
from .errors import ConfigurationError
from .handler import SentryLoggerHandler
from .lifecycle import flush, get_client, init, shutdown, stats
from .record import Limits
from .wsgi import SentryLoggerWSGIMiddleware

__all__ = [
    "Client",
    "ClientOptions",
    "ConfigurationError",
    "Limits",
    "SentryLoggerHandler",
    "SentryLoggerMiddleware",
    "SentryLoggerWSGIMiddleware",
    "__version__",
    "flush",
    "get_client",
    "init",
    "shutdown",
    "stats",
]

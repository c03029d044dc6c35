from __future__ import annotations

__version__ = "0.1.0"
SDK_NAME = "sentry-logger"

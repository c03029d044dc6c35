"""Exceptions raised to the application by the SDK.

Only configuration problems are raised (at ``init()`` time, so they show up
when the app starts). Everything that goes wrong later, while sending, is
counted and reported on the SDK's own logger instead: the SDK never raises
into a logging call.
"""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(Exception):
    """The SDK configuration is missing or invalid.

    The message says which setting is wrong, every place that was looked at,
    and what to do about it. It never contains a full API key.
    """

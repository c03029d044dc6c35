"""Ingest's C speed-ups (server/_speedups.c), when the install could compile them.

`copy_data` is None without them: the PostgreSQL writer then has asyncpg encode its COPY
(server._pg_writer): the same rows for 2-2.6x the CPU (bench/pg_copy_encode.py). In CI the suite requires them
(tests/server/test_native.py), so a broken build does not go unnoticed as a slower server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["copy_data", "log_missing"]

copy_data: Callable[[list[list[Any]] | list[tuple[Any, ...]], str], bytes] | None
try:
    from server._speedups import copy_data
except ImportError:  # no C compiler at install time, or a platform without the built module
    copy_data = None


def log_missing(log: logging.Logger) -> None:
    """Say once, at start-up, that this server runs without them and what that costs."""
    if copy_data is None:
        log.warning("server._speedups is not built (no C compiler at install?): PostgreSQL ingest encodes its "
                    "COPY data with asyncpg instead, ~0.6 us more CPU a log; reinstall with a C compiler for it")

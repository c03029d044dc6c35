"""Ingest's C speed-ups (server/_speedups.c), when the install could compile them.

Without them (`built` False) the PostgreSQL writer has asyncpg encode its COPY, the same rows
for 2-2.6x the CPU (bench/pg_copy_encode.py), and word blocks collect their words in Python
sets (server.fulltext.PyWordSet), ~4x the CPU (bench/word_set_cost.py). In CI the suite requires
them (tests/server/test_native.py), so a broken build does not go unnoticed as a slower server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.fulltext import PyWordSet, WordSet, split_words

__all__ = ["built", "copy_data", "log_missing", "word_set"]

copy_data: Callable[[list[list[Any]] | list[tuple[Any, ...]], str], bytes] | None
try:
    from server import _speedups
except ImportError:  # no C compiler at install time, or a platform without the built module
    _speedups = None  # type: ignore[assignment]
    copy_data = None
else:
    copy_data = _speedups.copy_data
built = _speedups is not None


def word_set() -> WordSet:
    """An empty WordSet: server._speedups.WordSet when built, else server.fulltext.PyWordSet."""
    return PyWordSet() if _speedups is None else _speedups.WordSet(split_words)


def log_missing(log: logging.Logger) -> None:
    """Say once, at start-up, that this server runs without them and what that costs."""
    if copy_data is None:
        log.warning("server._speedups is not built (no C compiler at install?): PostgreSQL ingest encodes its "
                    "COPY data with asyncpg and collects word blocks' words in Python instead, ~2 us more CPU a "
                    "log; reinstall with a C compiler for it")

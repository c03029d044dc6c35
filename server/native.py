"""Ingest's C speed-ups (server._speedups, from server/_c/), when the install could compile them.

Without them (`built` False) requests make their rows in Python (server.ingest_fast, ~3x the
CPU: bench/ingest_validate_cost.py), the PostgreSQL writer has asyncpg encode its COPY, the same
rows for 2-2.6x the CPU (bench/pg_copy_encode.py), and word blocks collect their words in
Python sets (server.fulltext.PyWordSet), ~2.7x the CPU (bench/word_set_cost.py). In CI the
suite requires them (tests/server/test_native.py), so a broken build does not go unnoticed as a
slower server.
"""

from __future__ import annotations

import logging

from server.fulltext import PyWordSet, WordSet, split_words

__all__ = ["built", "copy_rows", "log_missing", "log_rows", "set_log_type", "word_set"]

try:
    from server import _speedups
except ImportError:  # no C compiler at install time, or a platform without the built module
    _speedups = None  # type: ignore[assignment]
built = _speedups is not None
# Each None when not built (server/_c/copy_rows.c and log_rows.c say what they do).
copy_rows = _speedups.copy_rows if built else None
log_rows = _speedups.log_rows if built else None
set_log_type = _speedups.set_log_type if built else None


def word_set() -> WordSet:
    """An empty WordSet: server._speedups.WordSet when built, else server.fulltext.PyWordSet."""
    return _speedups.WordSet(split_words) if built else PyWordSet()


def log_missing(log: logging.Logger) -> None:
    """Say once, at start-up, that this server runs without them and what that costs."""
    if not built:
        log.warning("server._speedups is not built (no C compiler at install?): ingest makes its rows in Python, "
                    "and on PostgreSQL has asyncpg encode its COPY data and collects word blocks' words in Python: "
                    "1-2 us more CPU a log; reinstall with a C compiler for them")

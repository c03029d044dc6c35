"""Many rows in one SQLite statement: `INSERT ... VALUES (...), (...), ...`.

Python's sqlite3 releases the GIL around each `sqlite3_step`, and `executemany` steps once
per row: on the writer's thread, every row then waits to get the GIL back from the busy
event-loop thread. Measured with a busy second thread: `executemany` 363 rows/s, one
multi-row statement per 1,800 rows 49,500 rows/s (and 185k vs 157k rows/s when idle).

Statements hold a power-of-two number of rows (1,024 at most: a commit of 300 rows runs
256 + 32 + 8 + 4), so a table has at most 11 statement texts. sqlite3 keeps its last 128
compiled statements per connection, and one per row count had taken the writer's memory to
~90 MB of compiled statements (a 1,000-row one is hundreds of kB) with 64 clients, whose
commits come in many sizes: the server's peak RSS went over 200 MB (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

__all__ = ["MAX_VARIABLES", "execute_rows"]

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32; builds with a lower limit are rare.
MAX_VARIABLES = 32_766
_MAX_ROWS = 1024  # per statement


def execute_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = "", max_variables: int = MAX_VARIABLES
) -> int | None:
    """Run `{head} VALUES (?, ...), ... {tail}` over `rows` in as few statements as the limit
    allows; returns the rowid of the last row inserted (sqlite3's `lastrowid`)."""
    if not rows:
        return None
    width = len(rows[0])
    most = min(_MAX_ROWS, max(1, max_variables // width))
    last = None
    start = 0
    while start < len(rows):
        size = 1 << (min(most, len(rows) - start).bit_length() - 1)  # the largest power of two that fits
        chunk = rows[start : start + size]
        last = conn.execute(_statement(head, tail, width, size), list(chain.from_iterable(chunk))).lastrowid
        start += size
    return last


@functools.lru_cache(maxsize=64)
def _statement(head: str, tail: str, width: int, size: int) -> str:
    """The text of a `size`-row statement: made once, not per call (a 1,024-row text is ~40 kB,
    and sqlite3 finds its compiled statement by the text: the same str keeps its hash)."""
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * size)}{tail}"

"""Health aggregates of committed logs that are not in the health tables yet.

Writing the aggregates in every log commit made them a third of SQLite's ingest cost: a commit
of a few thousand rows touched ~1,000 aggregate rows (counts, histograms, error messages, each
per minute, hour and day). So a writer keeps each commit's roll-ups (`MinuteDelta`s, one per
request, server.health_rollup) here and writes them all about once a second
(HEALTH_FLUSH_SECONDS), and whenever the health API or dashboard asks (`LogWriter.flush_health`),
so that what they read includes every log committed before the request.

A flush runs inside a log commit, under the writer's lock (BEGIN IMMEDIATE on SQLite, the
advisory lock on PostgreSQL), and covers every log id from the watermark
(`health_watermark.last_log_id`) to the newest committed one: the writer's own commits from
here, and every other id range read back from `logs` and rolled up the same way: another
process's commits, or rows whose roll-ups a crash or the bound below lost. Then it moves the
watermark. A range is counted by the flush that moves the watermark past it, once; each writer
forgets its commits that the watermark has passed.

Bound: MAX_COMMITS commits wait here; past it they are forgotten and their rows are read back
at the next flush (which reads back at most READ_BACK_MAX rows, and moves the watermark only as
far as it got). Forgetting costs time, never counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.health_rollup import MinuteDelta, merge_minutes, rollup_minutes

__all__ = [
    "READ_BACK", "READ_BACK_MAX", "WATERMARK_GET", "WATERMARK_SET", "FlushPlan", "PendingHealth", "Segment", "compact",
]

READ_BACK_MAX = 100_000
# An expression (0 when the row is missing, as after a TRUNCATE), and an upsert with {p} for the value.
WATERMARK_GET = "COALESCE((SELECT last_log_id FROM health_watermark WHERE id = 1), 0)"
WATERMARK_SET = ("INSERT INTO health_watermark (id, last_log_id) VALUES (1, {p}) "
                 "ON CONFLICT (id) DO UPDATE SET last_log_id = excluded.last_log_id")
# The columns `rollup_minutes` reads, in server.ingest_validate.COLUMNS order (attributes as text).
READ_BACK = ("SELECT id, app_id, ts, received_at, level, level_name, service, logger, message, {attributes} "
             "FROM logs WHERE id >= {lo} AND id <= {hi} ORDER BY id LIMIT {limit}")
# (first id, last id, the roll-ups of those rows, or None: read them back from `logs`)
Segment = tuple[int, int, "list[MinuteDelta] | None"]


class PendingHealth:
    MAX_COMMITS = 10_000

    def __init__(self) -> None:
        self._commits: list[Segment] = []  # in id order, as committed
        self.forgotten = 0

    def __bool__(self) -> bool:
        return bool(self._commits)

    def add(self, first_id: int, last_id: int, deltas: list[MinuteDelta] | None) -> None:
        """A committed range of ids (including ids a commit left unused) and its rows' roll-ups
        (None: read them back)."""
        if len(self._commits) >= self.MAX_COMMITS:
            self._commits.clear()
            self.forgotten += 1
        self._commits.append((first_id, last_id, deltas))

    def segments(self, watermark: int, last_id: int, current: Segment | None = None) -> list[Segment]:
        """The ids after `watermark` up to `last_id` in order: known commits (and `current`, the
        commit in progress) with their roll-ups, the ranges between them to read back."""
        out: list[Segment] = []
        cursor = watermark + 1
        for first, last, deltas in (*self._commits, *([current] if current else [])):
            if last < cursor:
                continue  # counted by an earlier flush (another writer's, which read it back)
            if first > last_id:
                break
            if first < cursor or last > last_id:  # never expected: read the overlap back instead
                out.append((cursor, min(last, last_id), None))
            else:
                if first > cursor:
                    out.append((cursor, first - 1, None))
                out.append((first, last, deltas))
            cursor = min(last, last_id) + 1
        if cursor <= last_id:
            out.append((cursor, last_id, None))
        return out

    def forget(self, upto: int) -> None:
        """Drop the commits a flush counted (ids up to `upto`)."""
        self._commits = [c for c in self._commits if c[1] > upto]


class FlushPlan:
    """What one flush counts: the segments from the watermark on, with at most `budget` rows
    read back. The writer reads each range `reads()` yields (first id, last id, row limit;
    READ_BACK's query) and hands the rows to `got`; then `delta()` is the roll-up of everything
    up to `covered`, the watermark to store."""

    def __init__(self, segments: list[Segment], watermark: int, budget: int | None = None) -> None:
        self.segments = segments
        self.covered = watermark
        self.budget = READ_BACK_MAX if budget is None else budget
        self._rows: list[list[tuple[Any, ...]]] = []

    def reads(self) -> Iterator[tuple[int, int, int]]:
        for i, (first, last, deltas) in enumerate(self.segments):
            if deltas is None:
                if self.budget <= 0:
                    self.segments = self.segments[:i]
                    return
                yield first, last, self.budget
                rows = self._rows[-1]
                self.budget -= len(rows)
                if self.budget <= 0 and rows and rows[-1][0] < last:  # stopped inside this range
                    self.covered = rows[-1][0]
                    self.segments = self.segments[: i + 1]
                    return
            self.covered = last

    def got(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows.append(rows)

    def delta(self) -> MinuteDelta:
        """All segments' roll-ups added up in id order (call after `reads()` is exhausted)."""
        total = MinuteDelta()
        read = iter(self._rows)
        for _, _, deltas in self.segments:
            # tuple(): a snapshot, as `compact` may replace the list's items from another thread
            for delta in tuple(deltas) if deltas is not None else [rollup_minutes(next(read))]:
                merge_minutes(total, delta)
        return total


def compact(deltas: list[MinuteDelta]) -> None:
    """Replace a commit's roll-ups (one per request) by their sum, in place. The event loop
    does this after each commit, so that a flush, on the writer's serial path, adds up a few
    sums instead of a thousand requests' roll-ups (5.6% of SQLite's writer thread). Safe
    beside a flush on another thread: it reads a snapshot, and the list's items change in one
    step, so a flush sees either all the requests' roll-ups or their sum."""
    if len(deltas) > 1:
        total = MinuteDelta()
        for delta in tuple(deltas):
            merge_minutes(total, delta)
        deltas[:] = [total]

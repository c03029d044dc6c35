"""Counters of what happened to records, sent to the server as ``client_report``.

Every record the SDK does not deliver is counted under a reason:

- ``queue_full``: the in-memory buffer was at its record or byte bound;
- ``too_large``: one record was over ``max_record_bytes`` even after clipping,
  or the server answered 413 for a batch of one record;
- ``spool_full``: the server was unreachable and the spool directory was full;
- ``rejected_by_server``: the server refused the whole batch (400, 413, 404...);
- ``auth_failed``: the server answered 401 (key unknown or revoked);
- ``shutdown``: the process exited with records undelivered and no spool;
- ``capture_failed``: the handler could not capture a record (an SDK bug).

``retried`` counts retried send attempts, ``spooled`` records written to the
spool, ``rejected`` records the server refused one by one in a 202 answer.
The counters since the last delivered report travel with the next batch; a
batch keeps the report it was first sent with, so a retried batch (same
``batch_id``) never reports twice or loses counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["DROP_REASONS", "Counters"]

DROP_REASONS = (
    "queue_full", "too_large", "spool_full", "rejected_by_server", "auth_failed", "shutdown", "capture_failed",
)


class Counters:
    """Thread-safe counters: a pending report plus totals since start."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start from zero with a fresh lock (also used in a forked child)."""
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()

    def drop(self, reason: str, count: int = 1) -> None:
        self._add(f"dropped.{reason}", count)

    def retried(self, count: int = 1) -> None:
        self._add("retried", count)

    def spooled(self, count: int) -> None:
        self._add("spooled", count)

    def rejected(self, count: int) -> None:
        self._add("rejected", count)

    def sent(self, count: int) -> None:
        with self._lock:
            self._totals["sent"] += count

    def _add(self, key: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._pending[key] += count
            self._totals[key] += count

    def take_report(self) -> dict[str, Any] | None:
        """Move the pending counters into a ``client_report`` object (None if all zero)."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        return _as_report(pending) if pending else None

    def restore_report(self, report: dict[str, Any] | None) -> None:
        """Put back the counters of a report whose batch was never delivered."""
        if not report:
            return
        with self._lock:
            for reason, count in report.get("dropped", {}).items():
                self._pending[f"dropped.{reason}"] += count
            for key in ("retried", "spooled", "rejected"):
                self._pending[key] += report.get(key, 0)

    def totals(self) -> dict[str, Any]:
        """Counters since the SDK started in this process (for ``stats()``)."""
        with self._lock:
            totals = Counter(self._totals)
        report = _as_report(totals)
        report["sent"] = totals["sent"]
        return report


def _as_report(counts: Counter[str]) -> dict[str, Any]:
    dropped = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("dropped.") and v}
    return {
        "dropped": dropped,
        "retried": counts["retried"],
        "spooled": counts["spooled"],
        "rejected": counts["rejected"],
    }

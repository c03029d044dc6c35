"""The bounded in-memory buffer between logging calls and the worker thread.

Bounds: ``max_records`` entries, and ``max_bytes`` of estimated memory
(message, traceback and attribute sizes plus a fixed per-entry overhead).
Entries of at most ``SMALL_ENTRY_BYTES`` are charged that much each through
the record bound, without a lock; larger entries are counted at their size
under a lock against what the small ones can use. So memory held by the
buffer never exceeds ``max_bytes``, and a flood of huge messages hits the byte
bound long before the record bound.

Overflow policy: the *new* record is dropped and counted as ``queue_full``;
records already buffered are never evicted, so the oldest context of an
incident (usually the cause) survives a flood.

The handler appends small entries inline (``items.append``, atomic under the
GIL) and calls ``put`` only for large ones; the worker takes from the left.
"""

from __future__ import annotations

import threading
from collections import deque

from .record import SIZE, Entry

__all__ = ["SMALL_ENTRY_BYTES", "Buffer"]

SMALL_ENTRY_BYTES = 1280


class Buffer:
    """FIFO of entries bounded in records and bytes (see the module docstring)."""

    def __init__(self, max_records: int, max_bytes: int, batch_size: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        # What large entries may use: the total minus the worst case of small ones.
        self.large_budget = max(0, max_bytes - max_records * SMALL_ENTRY_BYTES)
        self.ready = threading.Event()  # set when a full batch is waiting
        self.items: deque[Entry] = deque()
        self._lock = threading.Lock()
        self._large_bytes = 0

    def put(self, entry: Entry) -> bool:
        """Append ``entry``; False (nothing stored) when a bound would be exceeded."""
        items = self.items
        if len(items) >= self.max_records:
            return False
        size = entry[SIZE]
        if size > SMALL_ENTRY_BYTES:
            with self._lock:
                if self._large_bytes + size > self.large_budget:
                    return False
                self._large_bytes += size
        items.append(entry)
        if len(items) == self.batch_size:
            self.ready.set()
        return True

    def take(self, max_records: int, max_bytes: int) -> list[Entry]:
        """Remove and return up to ``max_records`` entries and about ``max_bytes``.

        At least one entry is returned when the buffer is not empty, so a
        single large record still makes progress.
        """
        out: list[Entry] = []
        taken = large = 0
        items = self.items
        with self._lock:  # one taker at a time; appends are lock-free
            while items and len(out) < max_records:
                size = items[0][SIZE]
                if out and taken + size > max_bytes:
                    break
                out.append(items.popleft())
                taken += size
                if size > SMALL_ENTRY_BYTES:
                    large += size
            self._large_bytes -= large
        if len(items) < self.batch_size:
            self.ready.clear()
            if len(items) >= self.batch_size:  # an append raced the clear
                self.ready.set()
        return out

    def __len__(self) -> int:
        return len(self.items)

    @property
    def bytes(self) -> int:
        """Estimated bytes held right now (O(n); for stats, not the hot path)."""
        return sum(e[SIZE] for e in list(self.items))

    def reset_after_fork(self) -> None:
        """Empty the child's copy (the parent sends those records) with fresh locks.

        The deque is cleared in place: the handler holds a reference to it.
        """
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.items.clear()
        self._large_bytes = 0

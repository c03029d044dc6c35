"""The bounded in-memory buffer between logging calls and the worker thread.

Bound: ``max_records`` entries and ``max_bytes`` estimated bytes (message,
traceback and attribute sizes plus a fixed per-entry overhead), whichever is
reached first. Overflow policy: the *new* record is dropped and counted as
``queue_full``; records already buffered are never evicted, so the oldest
context of an incident (usually the cause) survives a flood.

``put`` is the only method on the application's hot path: one uncontended
lock, one append, and an ``Event.set`` once per ``batch_size`` records.
"""

from __future__ import annotations

import threading
from collections import deque

from .record import Entry

__all__ = ["Buffer"]


class Buffer:
    """FIFO of ``(size, entry)`` pairs bounded in records and bytes."""

    def __init__(self, max_records: int, max_bytes: int, batch_size: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.ready = threading.Event()  # set when a full batch is waiting
        self._lock = threading.Lock()
        self._items: deque[tuple[int, Entry]] = deque()
        self._bytes = 0

    def put(self, entry: Entry, size: int) -> bool:
        """Append ``entry``; False (nothing stored) when a bound would be exceeded."""
        with self._lock:
            count = len(self._items)
            if count >= self.max_records or self._bytes + size > self.max_bytes:
                return False
            self._items.append((size, entry))
            self._bytes += size
        if count + 1 == self.batch_size:
            self.ready.set()
        return True

    def take(self, max_records: int, max_bytes: int) -> list[Entry]:
        """Remove and return up to ``max_records`` entries and about ``max_bytes``.

        At least one entry is returned when the buffer is not empty, so a
        single large record still makes progress.
        """
        out: list[Entry] = []
        taken = 0
        with self._lock:
            items = self._items
            while items and len(out) < max_records:
                size = items[0][0]
                if out and taken + size > max_bytes:
                    break
                out.append(items.popleft()[1])
                taken += size
            self._bytes -= taken
            if len(items) < self.batch_size:
                self.ready.clear()
        return out

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def reset_after_fork(self) -> None:
        """Empty the child's copy (the parent sends those records) with fresh locks."""
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._items = deque()
        self._bytes = 0

"""The on-disk spool: batches that could not be delivered, replayed in order.

Layout: one directory per (DSN, API key) pair, so a batch is only ever replayed
to the server and key it was meant for. Each batch is one file holding the
exact gzip request body (with its ``batch_id``, so a replay the server already
committed is answered as a duplicate and never stored twice)::

    <spool_root>/<sha256(dsn, key)[:16]>/<time_ns>-<seq>-<records>-<batch_id>.batch

A worker claims the oldest file by renaming it to ``<name>.<pid>-<token>.claim``
(rename is atomic, so two processes sharing the directory never send the same
file at once) and deletes it once the server accepted it. A claim whose
process is gone (or which has not been touched for ``stale_claim_seconds``) is
renamed back and replayed by whoever scans next, e.g. the restarted app.

Bound: ``max_bytes`` of files. Past it, new batches are not written and their
records are counted as ``spool_full``; files already spooled are kept (they are
older, and replay keeps order).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolFile", "spool_directory"]

_NAME = re.compile(r"(\d{20})-(\d{6})-(\d+)-([0-9a-zA-Z._-]{1,128})\.batch")
_CLAIM = re.compile(r"(.+\.batch)\.(\d+)-([0-9a-f]+)\.claim")


@dataclass
class SpoolFile:
    """A claimed spool file: its path now, record count and batch id."""

    path: Path
    records: int
    batch_id: str
    size: int


def spool_directory(root: Path, dsn: str, api_key: str) -> Path:
    """The per-target subdirectory of ``root`` (the key itself never appears)."""
    digest = hashlib.sha256(f"{dsn}\0{api_key}".encode()).hexdigest()[:16]
    return root / digest


class Spool:
    """A bounded directory of undelivered batches, oldest first."""

    def __init__(self, directory: Path, max_bytes: int, stale_claim_seconds: float = 300.0) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.stale_claim_seconds = stale_claim_seconds
        self._seq = itertools.count()
        self._token = secrets.token_hex(4)
        self._bytes = 0
        self.pending = False  # True when unclaimed files may exist
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.scan()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def scan(self) -> None:
        """Recount the directory's size and release stale claims of dead processes."""
        total, pending = 0, False
        for entry in self._entries():
            with contextlib.suppress(OSError):
                total += entry.stat().st_size
                claim = _CLAIM.fullmatch(entry.name)
                if claim is not None and self._is_stale(entry, int(claim.group(2)), claim.group(3)):
                    os.replace(entry, entry.with_name(claim.group(1)))
                    pending = True
                elif _NAME.fullmatch(entry.name):
                    pending = True
        self._bytes, self.pending = total, pending

    def write(self, batch_id: str, body: bytes, records: int, *, claimed: bool) -> SpoolFile | None:
        """Store a batch body; ``None`` if it would pass the bound (or the disk failed).

        ``claimed=True`` writes it already claimed by this process: the worker
        keeps retrying it as its current batch, and it survives a crash.
        """
        if self._bytes + len(body) > self.max_bytes:
            return None
        name = f"{time.time_ns():020d}-{next(self._seq) % 1_000_000:06d}-{records}-{batch_id}.batch"
        final = self.directory / (self._claim_name(name) if claimed else name)
        tmp = self.directory / f".tmp-{os.getpid()}-{self._token}-{name}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return None
        self._bytes += len(body)
        if not claimed:
            self.pending = True
        return SpoolFile(final, records, batch_id, len(body))

    def claim_oldest(self) -> tuple[SpoolFile, bytes] | None:
        """Claim the oldest unclaimed batch and return it with its body."""
        names = sorted(e.name for e in self._entries() if _NAME.fullmatch(e.name))
        for name in names:
            source = self.directory / name
            target = self.directory / self._claim_name(name)
            try:
                os.replace(source, target)
                body = target.read_bytes()
            except OSError:
                continue  # another process claimed it first
            match = _NAME.fullmatch(name)
            assert match is not None
            return SpoolFile(target, int(match.group(3)), match.group(4), len(body)), body
        self.pending = False
        return None

    def delete(self, spooled: SpoolFile) -> None:
        with contextlib.suppress(OSError):
            os.unlink(spooled.path)
            self._bytes = max(0, self._bytes - spooled.size)

    def touch(self, spooled: SpoolFile) -> None:
        """Mark a claim as alive (the worker calls this before each attempt)."""
        with contextlib.suppress(OSError):
            os.utime(spooled.path)

    def release(self, spooled: SpoolFile) -> None:
        """Give a claim back (at exit) so the next process replays it at once."""
        match = _CLAIM.fullmatch(spooled.path.name)
        if match is not None:
            with contextlib.suppress(OSError):
                os.replace(spooled.path, spooled.path.with_name(match.group(1)))
                self.pending = True

    def reset_after_fork(self) -> None:
        self._token = secrets.token_hex(4)

    def _claim_name(self, name: str) -> str:
        return f"{name}.{os.getpid()}-{self._token}.claim"

    def _entries(self) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(self.directory) if e.is_file()]
        except OSError:
            return []

    def _is_stale(self, path: Path, pid: int, token: str) -> bool:
        if pid == os.getpid():
            return token != self._token  # a previous process that had our pid (containers)
        if time.time() - path.stat().st_mtime > self.stale_claim_seconds:
            return True
        if sys.platform == "win32":
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

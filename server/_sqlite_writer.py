"""The SQLite half of the log writer: a plain sqlite3 connection on one thread of its own.

A whole commit runs as one call on that thread (`LogWriter._sqlite_thread`, which takes the
queued batches itself), with the rows inserted by multi-row INSERT statements (`server._sqlite_bulk`:
`executemany` gives the GIL back and waits for it once per row). Also measured: one
`INSERT ... SELECT FROM json_each(?)` per commit, slower than both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import orjson

from server._sqlite_bulk import execute_rows
from server.db import sqlite_connection
from server.health_aggregate import WATERMARK_GET, WATERMARK_SET
from server.health_rollup import HealthDelta
from server.health_store import LatencyCache, write_sqlite
from server.ingest_validate import LOG_COLUMNS

__all__ = ["SqliteWriterConnection"]


WAL_KEEP_BYTES = 64 * 1024 * 1024
_INSERT_HEAD = f"INSERT INTO logs ({', '.join(LOG_COLUMNS)})"
_INSERT_REQUESTS = "INSERT INTO log_requests (id, route, duration_us, duration_bin)"

# (app_id, key_id, batch_id, accepted, rejected, rows, report, request records (index in rows, route, us, bin))
BatchSpec = tuple[
    int, int, "str | None", int, int, list[tuple[Any, ...]], "dict[str, Any] | None", "list[tuple[int, str, int, int]] | None"
]
# A health aggregator's pass (server.health_aggregate): (watermark it read, last id it counted, the upserts or None)
HealthJob = tuple[int, int, "HealthDelta | None"]
# A new id is one more than the largest stored id or the health watermark, whichever is larger
# (deleting the newest rows must not make ids repeat). Usually the former: SQLite numbers rows
# inserted without an id that way itself, and the writer's thread need not renumber them.
_MAX_IDS = f"SELECT COALESCE((SELECT MAX(id) FROM logs), 0), {WATERMARK_GET}"
# (first new id, fresh batch indexes, duplicates by batch index, whether each health job was
# applied, indexes of batches whose API key is no longer active)
SqliteCommit = tuple[int, list[int], dict[int, tuple[int, int]], list[bool], list[int]]
_WATERMARK = f"SELECT {WATERMARK_GET}"
_SET_WATERMARK = WATERMARK_SET.format(p="?")


class SqliteWriterConnection:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # Set by LogWriter's checkpoint loop after each of its checkpoints: the next commit first
        # copies what was written meanwhile, so that the WAL starts over (see _checkpoint_loop).
        self.finish_checkpoint = False
        # Called (on this thread) once the remainder is copied: the WAL starts over at this commit.
        self.checkpoint_finished: Callable[[], None] | None = None
        self._latency_cache = LatencyCache()

    def open(self) -> None:
        conn = sqlite_connection(self.path)
        # Checkpoints (copying the WAL back into the database) would otherwise run inside our
        # COMMITs; LogWriter runs them on another connection and thread instead, and this
        # connection only copies the small remainder (see `finish_checkpoint`).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        # Inserts touch the right edge of each index: 16 MB of cache is plenty. The shared 64 MB
        # (SQLITE_PRAGMAS) filled with index pages took the server to 199 MB during the ingest
        # benchmark; with 16 MB, 144 MB, at the same throughput.
        conn.execute("PRAGMA cache_size=-16384")
        # After the WAL starts over, keep at most this much of its file (it grows to about a
        # second of ingest between restarts).
        conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def commit(self, batches: list[BatchSpec], now: int, jobs: Sequence[HealthJob] = ()) -> SqliteCommit:
        """Write the batches, and the health aggregator's passes `jobs`, in one transaction.
        Returns the first new id (the fresh batches' rows have the ids from it on, in order),
        the fresh batches' indexes, duplicates by batch index, which jobs were applied, and the
        batches whose API key was revoked or deleted (requests trust cached keys; this is
        their check, server.ingest_keys): neither stored nor recorded as batch ids."""
        conn = self._conn
        assert conn is not None
        if self.finish_checkpoint:
            self.finish_checkpoint = False
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if self.checkpoint_finished is not None:
                self.checkpoint_finished()
        conn.execute("BEGIN IMMEDIATE")
        try:
            duplicates: dict[int, tuple[int, int]] = {}
            fresh: list[int] = []
            revoked: list[int] = []
            active = _active_keys(conn, {spec[1] for spec in batches})
            for index, (app_id, key_id, batch_id, accepted, rejected, _, _, _) in enumerate(batches):
                if key_id not in active:
                    revoked.append(index)
                    continue
                if batch_id is not None:
                    cursor = conn.execute(
                        "INSERT OR IGNORE INTO ingest_batches (app_id, batch_id, committed_at, accepted, rejected) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (app_id, batch_id, now, accepted, rejected),
                    )
                    if cursor.rowcount == 0:
                        stored = conn.execute(
                            "SELECT accepted, rejected FROM ingest_batches WHERE app_id = ? AND batch_id = ?",
                            (app_id, batch_id),
                        ).fetchone()
                        duplicates[index] = (int(stored[0]), int(stored[1])) if stored else (0, 0)
                        continue
                fresh.append(index)
            max_id, watermark = conn.execute(_MAX_IDS).fetchone()
            first_id = max(max_id, watermark) + 1
            count = sum(len(batches[i][5]) for i in fresh)
            if count:
                rows = list(chain.from_iterable(batches[i][5] for i in fresh))  # ids None: SQLite numbers them
                if max_id < watermark:  # the newest rows were deleted: number them past the watermark
                    rows = [(first_id + k, *row[1:]) for k, row in enumerate(rows)]
                if execute_rows(conn, _INSERT_HEAD, rows) != first_id + count - 1:
                    raise RuntimeError("SQLite numbered the new logs unexpectedly")  # never: one writer
                requests: list[tuple[int, str, int, int]] = []
                offset = first_id
                for i in fresh:
                    fields = batches[i][7]
                    if fields:
                        requests.extend((offset + k, route, us, bin_) for k, route, us, bin_ in fields)
                    offset += len(batches[i][5])
                if requests:
                    execute_rows(conn, _INSERT_REQUESTS, requests)
                conn.execute(
                    "INSERT INTO logs_fts (rowid, message) SELECT id, message FROM logs WHERE id >= ? AND id < ?",
                    (first_id, first_id + count),
                )
            key_ids = sorted({batches[i][1] for i in fresh})
            if key_ids:
                conn.execute(
                    f"UPDATE api_keys SET last_used_at = ? WHERE id IN ({', '.join('?' * len(key_ids))})", (now, *key_ids)
                )
            reports = [(batches[i][0], batches[i][1], now, orjson.dumps(batches[i][6]).decode())
                       for i in fresh if batches[i][6]]
            if reports:
                execute_rows(conn, "INSERT INTO sdk_reports (app_id, api_key_id, received_at, report)", reports)
            applied = [self._apply_health(conn, job) for job in jobs]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return first_id, fresh, duplicates, applied, revoked

    def _apply_health(self, conn: sqlite3.Connection, job: HealthJob) -> bool:
        """A health aggregator's pass, unless the watermark moved since it read it (another
        process counted that range)."""
        watermark, upto, delta = job
        if conn.execute(_WATERMARK).fetchone()[0] != watermark:
            return False
        if delta is not None:
            write_sqlite(conn, delta, self._latency_cache)
        conn.execute(_SET_WATERMARK, (upto,))
        return True


def _active_keys(conn: sqlite3.Connection, key_ids: set[int]) -> set[int]:
    """Which of `key_ids` are API keys not revoked (in the caller's transaction)."""
    if not key_ids:
        return set()
    marks = ", ".join("?" * len(key_ids))
    return {row[0] for row in conn.execute(f"SELECT id FROM api_keys WHERE revoked_at IS NULL AND id IN ({marks})", tuple(key_ids))}

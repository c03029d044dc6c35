"""The PostgreSQL half of the log writer: one transaction per commit, the rows by COPY.

Keyword search data is written here too (docs/storage.md, "Full-text search"): each row's
`words` column holds its message's words as text (' w1 w2 w3 ', not indexed) when the message
is not ASCII (PostgreSQL derives the others' from the message: log_words, migration 0008), and
each commit adds one `log_word_blocks` row per app: the id and ts range of that app's rows in
the commit and the union of their words, GIN-indexed. One GIN entry per app per commit instead
of one per row: measured in isolation (COPY of 1,600-row commits, backend CPU per row), 15.4 us
with the per-row `text[]` GIN index, 9.7 us with the blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from server.fulltext import BLOCK_WORD_MAX, WordSet, stored_word_text, word_text
from server.ingest_validate import COLUMNS
from server.native import copy_rows, word_set

if TYPE_CHECKING:
    from server.writer import Batch

__all__ = [
    "COPY_COLUMNS", "COPY_KINDS", "Commit", "CopyBatch", "Statement", "commit_postgres", "copy_batches", "copy_logs",
    "copy_records", "copy_stream", "one_statement", "prepare_copy",
]

Row = tuple[Any, ...]
# What commit_postgres did: the first new id, the batches stored (their rows have the ids from
# it on, in order), and those whose API key is no longer active (nothing of them stored).
Commit = tuple[int, list["Batch"], list["Batch"]]
Statement = tuple[str, list[Any]]  # SQL with $1.. placeholders, and its arguments
_PLACEHOLDER = re.compile(r"\$(\d+)")
# One round trip before the COPY: the lock, then which of the batches' API keys ($3) are
# still active (server.ingest_keys: requests trust cached keys, this is their check), the ids
# and the batch ids of the batches whose key is active. MATERIALIZED and the FROM l make the
# lock come first (a batch id inserted before it could wait on another writer's uncommitted
# one while that writer waits for the lock: a deadlock). The active keys and the batch ids
# newly recorded come back; the other batch ids are duplicates. $2 = 0: no ids.
_LOCK_KEYS_IDS_AND_BATCHES = (
    "WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock($1)), "
    "k AS MATERIALIZED (SELECT COALESCE(array_agg(a.id), '{}') AS ids FROM l, api_keys a "
    "WHERE a.id = ANY($3::bigint[]) AND a.revoked_at IS NULL), "
    "ins AS (INSERT INTO ingest_batches (app_id, batch_id, committed_at, accepted, rejected) "
    "SELECT b.app_id, b.batch_id, $4, b.accepted, b.rejected "
    "FROM k, unnest($5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::bigint[]) "
    "AS b (app_id, key_id, batch_id, accepted, rejected) WHERE b.key_id = ANY(k.ids) "
    "ON CONFLICT DO NOTHING RETURNING app_id, batch_id) "
    "SELECT CASE WHEN $2::bigint > 0 THEN setval('logs_id_seq', nextval('logs_id_seq') + $2::bigint - 1) ELSE 0 END, "
    "(SELECT ids FROM k), (SELECT array_agg(app_id) FROM ins), (SELECT array_agg(batch_id) FROM ins) FROM l"
)
_INSERT_REPORTS = ("INSERT INTO sdk_reports (app_id, api_key_id, received_at, report) SELECT a, k, t, r::jsonb "
                   "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS x (a, k, t, r)")
_NOT_A_REQUEST = (None, None, None)
# COLUMNS positions
_APP_ID, _TS, _MESSAGE = 1, 2, 8
# The COPY's columns and their types for server._speedups.copy_rows (q bigint, h smallint, t text,
# j jsonb; tests/server/test_native.py checks them against the migrated table).
COPY_COLUMNS = (*COLUMNS, "words")
COPY_KINDS = "qqqqhttttjttttqttt" "tqh" "t"  # LOG_COLUMNS, the request columns, words

# The block's words: the app's pending words (the words of its batches' messages, added to one
# WordSet per app by each request when it queues its batch: LogWriter.submit), as one
# space-separated string that PostgreSQL splits. Splitting and de-duplicating the rows' whole
# word texts in SQL instead (string_to_array + DISTINCT, ~120 kB a commit) cost the database
# 9-11 us per row against 3 us for this, on the serial path; the work on the requests' side
# costs ~0.4 us a row in C, ~1 in Python (server.native; docs/storage.md).
_INSERT_BLOCKS = (
    "INSERT INTO log_word_blocks (app_id, first_id, last_id, min_ts, max_ts, words) "
    "SELECT b.app_id, b.first_id, b.last_id, b.min_ts, b.max_ts, string_to_array(b.words, ' ') "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) "
    "AS b (app_id, first_id, last_id, min_ts, max_ts, words)"
)


class CopyBatch:
    """One batch's COPY data, made by its request before it queues the batch (`prepare_copy`):
    the rows (LOG_COLUMNS, ids None: the writer numbers them), the request records' fields
    (route, duration_us, duration_bin) by index in the rows (None when there are none), the
    messages for the word block (None once `LogWriter.submit` has added their words to its
    app's pending WordSet) and the smallest and largest ts."""

    __slots__ = ("fields", "max_ts", "messages", "min_ts", "rows")

    def __init__(self, rows: list[Row], fields: dict[int, tuple[str, int, int]] | None, messages: list[str] | None,
                 min_ts: int, max_ts: int) -> None:
        self.rows, self.fields, self.messages, self.min_ts, self.max_ts = rows, fields, messages, min_ts, max_ts


def prepare_copy(rows: list[Row], requests: list[tuple[int, str, int, int]] | None = None) -> CopyBatch:
    """`rows` (LOG_COLUMNS, ids None, of one app) and their request fields (index, route,
    duration_us, duration_bin) as COPY data."""
    fields = {i: (route, us, bin_) for i, route, us, bin_ in requests} if requests else None
    ts = [row[_TS] for row in rows]
    return CopyBatch(rows, fields, [row[_MESSAGE] for row in rows], min(ts), max(ts))


def copy_stream(copies: list[CopyBatch], first_id: int) -> bytes:
    """The batches' rows as a binary COPY stream of COPY_COLUMNS, numbered from `first_id`: the
    request fields where a row has them, then its words text (server.fulltext.stored_word_text:
    None for an ASCII message). In C when built (server._speedups.copy_rows), else by asyncpg's
    encoder (`copy_records`)."""
    assert copy_rows is not None
    return copy_rows([(c.rows, c.fields) for c in copies], first_id, COPY_KINDS, _MESSAGE, word_text)


def copy_records(copies: list[CopyBatch], first_id: int) -> list[list[Any]]:
    """What `copy_stream` encodes, as records for asyncpg's copy_records_to_table."""
    records: list[list[Any]] = []
    for copy in copies:
        fields, base = copy.fields or {}, first_id + len(records)
        records += [[base + i, *row[1:], *fields.get(i, _NOT_A_REQUEST), stored_word_text(row[_MESSAGE])]
                    for i, row in enumerate(copy.rows)]
    return records


class _Block:
    __slots__ = ("first_id", "last_id", "max_ts", "min_ts", "words")

    def __init__(self, first_id: int, copy: CopyBatch, pending: WordSet | None) -> None:
        self.first_id, self.last_id = first_id, first_id + len(copy.rows) - 1
        self.min_ts, self.max_ts = copy.min_ts, copy.max_ts
        self.words = pending if pending is not None else word_set()  # the commit's own (LogWriter._take)
        if copy.messages:
            self.words.add_texts(copy.messages)

    def add(self, first_id: int, copy: CopyBatch) -> None:
        self.last_id = first_id + len(copy.rows) - 1  # batches are numbered in order
        self.min_ts, self.max_ts = min(self.min_ts, copy.min_ts), max(self.max_ts, copy.max_ts)
        if copy.messages:
            self.words.add_texts(copy.messages)

    def text(self) -> str:
        """The block's words, space-separated (the longest left out: BLOCK_WORD_MAX)."""
        return self.words.text(BLOCK_WORD_MAX)


async def copy_logs(conn: Any, rows: list[Row], first_id: int) -> None:
    """COPY `rows` (LOG_COLUMNS, of any apps, none a request record) with ids from `first_id`
    on, with their words and word blocks (the caller's transaction)."""
    by_app: dict[int, list[Row]] = {}
    for row in rows:
        by_app.setdefault(row[_APP_ID], []).append(row)
    copies = [prepare_copy(group) for group in by_app.values()]
    sql, args = await copy_batches(conn, list(zip(by_app, copies, strict=True)), first_id, {})
    await conn.execute(sql, *args)


async def copy_batches(
    conn: Any, copies: list[tuple[int, CopyBatch]], first_id: int, pending: Mapping[int, WordSet],
) -> Statement:
    """COPY the (app id, batch) rows into logs, numbered from `first_id` in order.
    Returns the statement adding one word block per app, for the caller to run in the same
    transaction: a block must never be missing for a committed row (queries trust the blocks
    to find every match). A block's words: its batches' own (`CopyBatch.messages`) and the app's
    `pending` words (those the writer collected at submit: a superset of the words of the
    batches it took; more words only make a query check a block's rows needlessly)."""
    blocks: dict[int, _Block] = {}
    next_id = first_id
    for app_id, copy in copies:
        block = blocks.get(app_id)
        if block is None:
            blocks[app_id] = _Block(next_id, copy, pending.get(app_id))
        else:
            block.add(next_id, copy)
        next_id += len(copy.rows)
    batches = [copy for _, copy in copies]
    if copy_rows is None:  # no C speed-ups: asyncpg encodes the same rows (server.native)
        await conn.copy_records_to_table("logs", records=copy_records(batches, first_id), columns=COPY_COLUMNS)
    else:
        # A memoryview: asyncpg takes bytes for a file name.
        await conn.copy_to_table("logs", source=memoryview(copy_stream(batches, first_id)), columns=COPY_COLUMNS,
                                 format="binary")
    return _INSERT_BLOCKS, [
        list(blocks), *([getattr(b, name) for b in blocks.values()] for name in ("first_id", "last_id", "min_ts", "max_ts")),
        [b.text() for b in blocks.values()],
    ]


def one_statement(parts: list[Statement]) -> Statement:
    """Several data-modifying statements as one: each becomes a WITH query, which PostgreSQL
    runs exactly once and to completion whether or not the main query reads it. One round
    trip instead of one each (a round trip waits for the busy event loop to read the reply)."""
    ctes: list[str] = []
    args: list[Any] = []
    for i, (sql, part_args) in enumerate(parts):
        offset = len(args)
        renumbered = _PLACEHOLDER.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", sql)  # type: ignore[misc]
        ctes.append(f"w{i} AS ({renumbered})")
        args.extend(part_args)
    return f"WITH {', '.join(ctes)} SELECT 1", args


async def commit_postgres(
    conn: Any,
    batches: list[Batch],
    now: int,
    *,
    lock_key: int,
    mark_duplicate: Callable[[Batch, tuple[int, int] | None], None],
    pending_words: Mapping[int, WordSet] | None = None,
) -> Commit:
    """Write the batches in one transaction (Commit). Batches already stored are given to
    `mark_duplicate`; batches whose API key was revoked (or deleted) are neither stored nor
    recorded as batch ids. `pending_words`: the words of batches whose CopyBatch gave up its
    messages (LogWriter.submit), by app; the blocks add to them (the commit's own).

    Round trips: BEGIN; the lock with the keys, the ids and the batch ids; COPY; every other
    write as one statement; COMMIT (and one more to read a duplicate's first answer). Ids are
    allocated for all rows before duplicates and revoked keys are known, so such a batch
    leaves a gap in the ids (harmless: the live tail re-reads gaps, and rolled-back commits
    leave them too)."""
    total = sum(len(b.rows) for b in batches)
    for b in batches:  # batches queued by requests come prepared (server.ingest)
        if b.rows and b.copy is None:
            b.copy = prepare_copy(b.rows, b.requests)
    keyed = [b for b in batches if b.batch_id is not None]
    async with conn.transaction():
        # The advisory lock serialises writers across processes, so ids commit in increasing order.
        last_id, active, apps, batch_ids = await conn.fetchrow(
            _LOCK_KEYS_IDS_AND_BATCHES, lock_key, total, sorted({b.key_id for b in batches}), now,
            [b.app_id for b in keyed], [b.key_id for b in keyed], [b.batch_id for b in keyed],
            [len(b.rows) for b in keyed], [b.rejected for b in keyed],
        )
        inserted = set(zip(apps or [], batch_ids or [], strict=True))
        first_id = last_id - total + 1 if total else 0
        active_keys = set(active)
        revoked = [b for b in batches if b.key_id not in active_keys]
        if revoked:
            batches = [b for b in batches if b.key_id in active_keys]
        fresh = await _fresh(conn, batches, inserted, mark_duplicate)
        parts: list[Statement] = []
        copies = [(b.app_id, b.copy) for b in fresh if b.copy is not None]
        if copies:
            parts.append(await copy_batches(conn, copies, first_id, pending_words or {}))
        if fresh:
            parts.append(("UPDATE api_keys SET last_used_at = $1 WHERE id = ANY($2::bigint[])",
                          [now, sorted({b.key_id for b in fresh})]))
        reports = [(b.app_id, b.key_id, now, orjson.dumps(b.report).decode()) for b in fresh if b.report]
        if reports:
            parts.append((_INSERT_REPORTS, [list(column) for column in zip(*reports, strict=True)]))
        if parts:
            sql, args = one_statement(parts)
            await conn.execute(sql, *args)
    return first_id, fresh, revoked


async def _fresh(
    conn: Any, batches: list[Batch], inserted: set[tuple[int, str]],
    mark_duplicate: Callable[[Batch, tuple[int, int] | None], None],
) -> list[Batch]:
    """The batches not already stored (no batch id, or one of `inserted`, the (app id, batch
    id) pairs this commit recorded), in order; gives the others to `mark_duplicate` with their
    batch ids' first answers."""
    fresh: list[Batch] = []
    repeated: list[Batch] = []
    for batch in batches:
        key = (batch.app_id, batch.batch_id)
        if batch.batch_id is None or key in inserted:
            fresh.append(batch)
            inserted.discard(key)  # a second batch with the same id in this commit is a duplicate
        else:
            repeated.append(batch)
    if repeated:
        stored = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in await conn.fetch(
            "SELECT app_id, batch_id, accepted, rejected FROM ingest_batches b "
            "JOIN unnest($1::bigint[], $2::text[]) AS k (app_id, batch_id) USING (app_id, batch_id)",
            [b.app_id for b in repeated], [b.batch_id for b in repeated],
        )}
        for batch in repeated:
            mark_duplicate(batch, stored.get((batch.app_id, batch.batch_id)))
    return fresh

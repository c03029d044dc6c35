"""The PostgreSQL half of the log writer: one transaction per commit, the rows by COPY.

Keyword search data is written here too (docs/storage.md, "Full-text search"): each row's
`words` column holds its message's words as text (' w1 w2 w3 ', not indexed), and
each commit adds one `log_word_blocks` row per app: the id and ts range of that app's rows in
the commit and the union of their words, GIN-indexed. One GIN entry per app per commit instead
of one per row: measured in isolation (COPY of 1,600-row commits, backend CPU per row), 15.4 us
with the per-row `text[]` GIN index, 9.7 us with the blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from server.fulltext import BLOCK_WORD_MAX, word_text
from server.ingest_validate import COLUMNS

if TYPE_CHECKING:
    from server.writer import Batch

__all__ = ["Statement", "commit_postgres", "copy_logs", "copy_records", "one_statement", "prepare_words"]

Row = tuple[Any, ...]
Statement = tuple[str, list[Any]]  # SQL with $1.. placeholders, and its arguments
_PLACEHOLDER = re.compile(r"\$(\d+)")
# MATERIALIZED and the lone FROM make the lock come first, then the ids.
_LOCK_AND_IDS = (
    "WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock($1)) "
    "SELECT setval('logs_id_seq', nextval('logs_id_seq') + $2 - 1) FROM l"
)
_LOCK_ONLY = "SELECT pg_advisory_xact_lock($1)"
_INSERT_REPORTS = ("INSERT INTO sdk_reports (app_id, api_key_id, received_at, report) SELECT a, k, t, r::jsonb "
                   "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS x (a, k, t, r)")
_INSERT_BATCH_IDS = (
    "INSERT INTO ingest_batches (app_id, batch_id, committed_at, accepted, rejected) "
    "SELECT b.app_id, b.batch_id, $3, b.accepted, b.rejected "
    "FROM unnest($1::bigint[], $2::text[], $4::bigint[], $5::bigint[]) AS b (app_id, batch_id, accepted, rejected) "
    "ON CONFLICT DO NOTHING RETURNING app_id, batch_id"
)
_NOT_A_REQUEST = (None, None, None)
# COLUMNS positions
_ID, _APP_ID, _TS, _MESSAGE = 0, 1, 2, 8

# The block's words: its rows' word texts go joined (one string per block) and PostgreSQL
# splits them and drops repeats. Splitting ~150 kB of word text per commit in Python cost 12%
# of the event loop's time at 80k logs/s, and the database's CPU had room. (Reading the rows
# back from `logs` instead was planned as a sequential scan on a fresh table.)
_INSERT_BLOCKS = (
    "INSERT INTO log_word_blocks (app_id, first_id, last_id, min_ts, max_ts, words) "
    "SELECT b.app_id, b.first_id, b.last_id, b.min_ts, b.max_ts, ARRAY("
    f"SELECT DISTINCT w FROM unnest(string_to_array(b.texts, ' ')) AS w WHERE w <> '' AND length(w) <= {BLOCK_WORD_MAX}) "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) "
    "AS b (app_id, first_id, last_id, min_ts, max_ts, texts)"
)


class _Block:
    __slots__ = ("first_id", "last_id", "max_ts", "min_ts", "texts")

    def __init__(self, log_id: int, ts: int) -> None:
        self.first_id = self.last_id = log_id
        self.min_ts = self.max_ts = ts
        self.texts: list[str] = []


def prepare_words(rows: list[Row]) -> list[str]:
    """Each row's `words` text (server.fulltext.word_text). Requests call this for their own
    rows before queueing them, so the tokenising happens side by side with the commit in
    progress rather than inside it, under the advisory lock."""
    return [word_text(row[_MESSAGE]) for row in rows]


async def copy_logs(conn: Any, rows: list[Row]) -> None:
    """COPY `rows` (LOG_COLUMNS, ids assigned, of any apps, none a request record) with their
    words and word blocks."""
    by_app: dict[int, list[Row]] = {}
    for row in rows:
        by_app.setdefault(row[_APP_ID], []).append(row)
    groups = [[(*row, *_NOT_A_REQUEST, text) for row, text in zip(group, prepare_words(group), strict=True)]
              for group in by_app.values()]
    blocks = await copy_records(conn, groups)
    if blocks is not None:
        await conn.execute(blocks[0], *blocks[1])


async def copy_records(conn: Any, groups: list[list[Row]]) -> Statement | None:
    """COPY each group's records (one app's rows, COLUMNS then the words text, ids assigned)
    into logs; returns the statement adding one word block per app, for the caller to run in
    the same transaction: a block must never be missing for a committed row (queries trust the
    blocks to find every match)."""
    records: list[Row] = []
    blocks: dict[int, _Block] = {}
    for rows in groups:
        if not rows:
            continue
        records.extend(rows)
        app_id = rows[0][_APP_ID]
        first_id, last_id = min(r[_ID] for r in rows), max(r[_ID] for r in rows)
        min_ts, max_ts = min(r[_TS] for r in rows), max(r[_TS] for r in rows)
        block = blocks.get(app_id)
        if block is None:
            block = blocks[app_id] = _Block(first_id, min_ts)
        block.first_id, block.last_id = min(block.first_id, first_id), max(block.last_id, last_id)
        block.min_ts, block.max_ts = min(block.min_ts, min_ts), max(block.max_ts, max_ts)
        block.texts.extend(row[-1] for row in rows)
    await conn.copy_records_to_table("logs", records=records, columns=(*COLUMNS, "words"))
    if not blocks:
        return None
    return _INSERT_BLOCKS, [
        list(blocks), *([getattr(b, name) for b in blocks.values()] for name in ("first_id", "last_id", "min_ts", "max_ts")),
        ["".join(b.texts) for b in blocks.values()],  # each text starts and ends with a space
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
) -> list[Row]:
    """Write the batches in one transaction; returns the rows with their new ids (and their
    words text after the COLUMNS; each batch's `rows` become these). Batches already stored
    are given to `mark_duplicate`.

    Round trips: BEGIN; the lock with the ids; the batch ids (when
    any); COPY; every other write as one statement; COMMIT. Ids are allocated for all rows
    before duplicates are known, so a duplicate batch leaves a gap in the ids (harmless: the
    live tail re-reads gaps, and rolled-back commits leave them too)."""
    total = sum(len(b.rows) for b in batches)
    async with conn.transaction():
        # The advisory lock serialises writers across processes, so ids commit in increasing order.
        if total:
            last_id = await conn.fetchval(_LOCK_AND_IDS, lock_key, total)
        else:
            await conn.execute(_LOCK_ONLY, lock_key)
        fresh = await _fresh(conn, batches, now, mark_duplicate)
        rows: list[Row] = []
        parts: list[Statement] = []
        if any(b.rows for b in fresh):
            next_id = last_id - total + 1
            groups: list[list[Row]] = []
            for b in fresh:
                if not b.rows:
                    continue
                texts = b.words or prepare_words(b.rows)
                if b.requests:  # COPY: COLUMNS (the request fields after LOG_COLUMNS), then the words
                    fields = {i: (route, us, bin_) for i, route, us, bin_ in b.requests}
                    b.rows = [(next_id + i, *row[1:], *fields.get(i, _NOT_A_REQUEST), text)
                              for i, (row, text) in enumerate(zip(b.rows, texts, strict=True))]
                else:
                    b.rows = [(next_id + i, *row[1:], None, None, None, text)
                              for i, (row, text) in enumerate(zip(b.rows, texts, strict=True))]
                next_id += len(b.rows)
                rows.extend(b.rows)
                groups.append(b.rows)
            blocks = await copy_records(conn, groups)
            if blocks is not None:
                parts.append(blocks)
        if fresh:
            parts.append(("UPDATE api_keys SET last_used_at = $1 WHERE id = ANY($2::bigint[])",
                          [now, sorted({b.key_id for b in fresh})]))
        reports = [(b.app_id, b.key_id, now, orjson.dumps(b.report).decode()) for b in fresh if b.report]
        if reports:
            parts.append((_INSERT_REPORTS, [list(column) for column in zip(*reports, strict=True)]))
        if parts:
            sql, args = one_statement(parts)
            await conn.execute(sql, *args)
    return rows


async def _fresh(
    conn: Any, batches: list[Batch], now: int, mark_duplicate: Callable[[Batch, tuple[int, int] | None], None]
) -> list[Batch]:
    """The batches not already stored, in order; records the others' batch ids' first answers."""
    keyed = [b for b in batches if b.batch_id is not None]
    if not keyed:
        return batches
    inserted = {(r[0], r[1]) for r in await conn.fetch(
        _INSERT_BATCH_IDS, [b.app_id for b in keyed], [b.batch_id for b in keyed], now,
        [len(b.rows) for b in keyed], [b.rejected for b in keyed],
    )}
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

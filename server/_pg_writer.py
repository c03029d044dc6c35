"""The PostgreSQL half of the log writer: one transaction per commit, the rows by COPY.

Keyword search data is written here too (docs/storage.md, "Full-text search"): each row's
`words` column holds its message's words as text (' w1 w2 w3 ', not indexed), and
each commit adds one `log_word_blocks` row per app: the id and ts range of that app's rows in
the commit and the union of their words, GIN-indexed. One GIN entry per app per commit instead
of one per row: measured in isolation (COPY of 1,600-row commits, backend CPU per row), 15.4 us
with the per-row `text[]` GIN index, 9.7 us with the blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from server.fulltext import BLOCK_WORD_MAX, split_words
from server.health_rollup import MinuteDelta, merge_minutes, rollup_minutes, spread
from server.health_store import LatencyCache, write_postgres
from server.ingest_validate import COLUMNS

if TYPE_CHECKING:
    from server.writer import Batch

__all__ = ["Words", "commit_postgres", "copy_groups", "copy_logs", "prepare_words"]

Row = tuple[Any, ...]
# COLUMNS positions
_ID, _APP_ID, _TS, _MESSAGE = 0, 1, 2, 8

_INSERT_BLOCKS = (
    "INSERT INTO log_word_blocks (app_id, first_id, last_id, min_ts, max_ts, words) "
    "SELECT b.app_id, b.first_id, b.last_id, b.min_ts, b.max_ts, string_to_array(b.words, ' ') "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) "
    "AS b (app_id, first_id, last_id, min_ts, max_ts, words)"
)


class _Block:
    __slots__ = ("first_id", "last_id", "max_ts", "min_ts", "words")

    def __init__(self, log_id: int, ts: int) -> None:
        self.first_id = self.last_id = log_id
        self.min_ts = self.max_ts = ts
        self.words: set[str] = set()


Words = tuple[list[str], set[str]]


def prepare_words(rows: list[Row]) -> Words:
    """Each row's `words` text (' w1 w2 ') and the union of their words. Requests call this
    for their own rows before queueing them, so the tokenising happens side by side with the
    commit in progress rather than inside it, under the advisory lock."""
    texts: list[str] = []
    union: set[str] = set()
    for row in rows:
        found = split_words(row[_MESSAGE])  # repeats are harmless in the text, gone in the union
        texts.append(f" {' '.join(found)} ")
        union.update(found)
    return texts, union


async def copy_logs(conn: Any, rows: list[Row]) -> None:
    """COPY `rows` (COLUMNS, ids assigned, of any apps) with their words and word blocks."""
    by_app: dict[int, list[Row]] = {}
    for row in rows:
        by_app.setdefault(row[_APP_ID], []).append(row)
    await copy_groups(conn, [(group, prepare_words(group)) for group in by_app.values()])


async def copy_groups(conn: Any, groups: list[tuple[list[Row], Words]]) -> None:
    """COPY each group's rows (one app's, COLUMNS, ids assigned) into logs with their words,
    and add one word block per app. Call inside the transaction that commits the rows: a block
    must never be missing for a committed row (queries trust the blocks to find every match)."""
    records: list[Row] = []
    blocks: dict[int, _Block] = {}
    for rows, (texts, union) in groups:
        if not rows:
            continue
        records.extend([(*row, text) for row, text in zip(rows, texts, strict=True)])
        app_id = rows[0][_APP_ID]
        first_id, last_id = min(r[_ID] for r in rows), max(r[_ID] for r in rows)
        min_ts, max_ts = min(r[_TS] for r in rows), max(r[_TS] for r in rows)
        block = blocks.get(app_id)
        if block is None:
            block = blocks[app_id] = _Block(first_id, min_ts)
        block.first_id, block.last_id = min(block.first_id, first_id), max(block.last_id, last_id)
        block.min_ts, block.max_ts = min(block.min_ts, min_ts), max(block.max_ts, max_ts)
        block.words.update(union)
    await conn.copy_records_to_table("logs", records=records, columns=(*COLUMNS, "words"))
    if blocks:
        # Words hold no spaces, so each block's words travel as one space-joined string: a
        # text[][] parameter would need equal lengths.
        await conn.execute(
            _INSERT_BLOCKS, list(blocks), *([getattr(b, name) for b in blocks.values()]
                                            for name in ("first_id", "last_id", "min_ts", "max_ts")),
            [" ".join(w for w in b.words if len(w) <= BLOCK_WORD_MAX) for b in blocks.values()],
        )


async def commit_postgres(
    conn: Any,
    batches: list[Batch],
    now: int,
    *,
    lock_key: int,
    assign_ids: Callable[[list[Batch], int], list[Row]],
    mark_duplicate: Callable[[Batch, tuple[int, int] | None], None],
    latency_cache: LatencyCache | None,
) -> list[Row]:
    """Write the batches in one transaction (health aggregates too unless `latency_cache` is
    None); returns the rows with their new ids. Batches already stored are given to
    `mark_duplicate`, the others numbered by `assign_ids` from the first id allocated."""
    async with conn.transaction():
        # Serialises writers across processes, so ids are committed in increasing order.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        fresh: list[Batch] = []
        for batch in batches:
            if batch.batch_id is not None:
                inserted = await conn.fetchval(
                    "INSERT INTO ingest_batches (app_id, batch_id, committed_at, accepted, rejected) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1",
                    batch.app_id, batch.batch_id, now, len(batch.rows), batch.rejected,
                )
                if inserted is None:
                    stored = await conn.fetchrow(
                        "SELECT accepted, rejected FROM ingest_batches WHERE app_id = $1 AND batch_id = $2",
                        batch.app_id, batch.batch_id,
                    )
                    mark_duplicate(batch, (int(stored[0]), int(stored[1])) if stored else None)
                    continue
            fresh.append(batch)
        n = sum(len(b.rows) for b in fresh)
        rows: list[Row] = []
        if n:
            last_id = await conn.fetchval("SELECT setval('logs_id_seq', nextval('logs_id_seq') + $1 - 1)", n)
            rows = assign_ids(fresh, last_id - n + 1)
            await copy_groups(conn, [(b.rows, b.words or prepare_words(b.rows)) for b in fresh])
            if latency_cache is not None:
                total = MinuteDelta()
                for b in fresh:
                    merge_minutes(total, b.health if b.health is not None else rollup_minutes(b.rows))
                await write_postgres(conn, spread(total), latency_cache)
        await conn.executemany(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2", [(now, k) for k in {b.key_id for b in fresh}]
        )
        reports = [(b.app_id, b.key_id, now, orjson.dumps(b.report).decode()) for b in fresh if b.report]
        if reports:
            await conn.executemany(
                "INSERT INTO sdk_reports (app_id, api_key_id, received_at, report) VALUES ($1, $2, $3, $4)",
                reports,
            )
    return rows

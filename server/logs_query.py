"""The log query: filters, full-text keyword search and cursor pagination, one interface for
SQLite and PostgreSQL, newest first.

Keyword semantics (both databases): the keyword is split into words (runs of letters and
digits, case-insensitive); a log matches when its message contains every word.

SQLite asks its FTS5 table. PostgreSQL has no per-row word index (with its text[] column it
was more than half of the insert cost: docs/storage.md): each log's words are checked as
' w1 w2 w3 ' text (`log_has_word`, migration 0008: stored for non-ASCII messages, derived
from the message for the others), and word blocks (one per app per commit: an id range and
the union of its logs' words, GIN-indexed) say where matches can be. A keyword query finds the blocks holding
every word, answers an empty page if there are none, and reads only their id ranges, newest
blocks first, until the page is full (`_pg_keyword_rows`); when the blocks are many (a common
word) or the other filters leave few logs, the plain query with the word filters is cheaper
and runs instead.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from server.db import BIGINT_MAX, BIGINT_MIN, as_bigint
from server.errors import ApiError
from server.fulltext import BLOCK_WORD_MAX, words
from server.ingest_validate import COLUMNS, LEVELS, LOG_COLUMNS

__all__ = ["LogQuery", "format_ts", "parse_log_query", "row_to_api", "run_log_query"]

# Levels from here up are indexed by level (a partial index: they are the few worth finding
# fast over long ranges; INFO and DEBUG are found by the time index, being most of the rows).
PROBLEM_LEVEL = 30

_ATTR_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SELECT = ", ".join(f"l.{c}" for c in LOG_COLUMNS)


@dataclass
class LogQuery:
    levels: list[int] = field(default_factory=list)
    min_level: int | None = None
    words: list[str] = field(default_factory=list)
    since_us: int | None = None
    until_us: int | None = None
    services: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    after_id: int | None = None
    cursor: tuple[int, int] | None = None
    limit: int = 100
    # SQLite only, set by run_log_query: no matching log has a smaller id, so the full-text
    # look-up may skip the older part of the word's posting list.
    fts_min_id: int | None = None
    # PostgreSQL only, set by run_log_query: read only these (first id, last id) ranges, which
    # hold every matching log the query can still return (from word blocks).
    id_ranges: list[tuple[int, int]] | None = None


def format_ts(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, field_name: str, now_us: int) -> int:
    """Absolute (ISO 8601 or epoch seconds) or relative to now (`15m`, `1h`, `7d`)."""
    value = value.strip()
    match = _DURATION.match(value)
    if match:
        us = now_us - int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000
    else:
        try:
            us = int(float(value) * 1_000_000)
        except OverflowError:  # inf
            us = BIGINT_MAX + 1
        except ValueError:
            us = _iso_us(value, field_name)
    if not BIGINT_MIN <= us <= BIGINT_MAX:
        raise ApiError(400, "invalid_parameter", f"{field_name} is out of range; got {value[:40]!r}", field=field_name)
    return us


def _iso_us(value: str, field_name: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter",
            f"{field_name} must be ISO 8601, epoch seconds or a duration like 15m, 1h, 7d; got {value[:40]!r}",
            field=field_name,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def _level_number(value: str, field_name: str) -> int:
    found = LEVELS.get(value.strip().upper())
    if found is None:
        raise ApiError(400, "invalid_parameter", f"unknown level {value[:20]!r} in {field_name}", field=field_name)
    return found[0]


def encode_cursor(ts: int, log_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}:{log_id}".encode()).decode().rstrip("=")


def _decode_cursor(value: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        ts, log_id = (as_bigint(part) for part in raw.split(":"))
    except (ValueError, UnicodeDecodeError):
        ts = log_id = None
    if ts is None or log_id is None:
        raise ApiError(400, "invalid_parameter", "cursor is not one this API returned", field="cursor")
    return ts, log_id


def parse_log_query(params: Any, default_limit: int, max_limit: int) -> LogQuery:
    """Build a LogQuery from query-string parameters (a Starlette QueryParams or a MultiDict)."""
    now = time.time_ns() // 1000
    query = LogQuery(limit=default_limit)
    for name in params:  # the tail's filters and the dashboard's come here without server.nul_guard
        if "\x00" in name or any("\x00" in value for value in params.getlist(name)):
            field_name = name.replace("\x00", "\ufffd")
            raise ApiError(400, "invalid_parameter",
                           f"query parameter {field_name} must not contain NUL characters (%00)", field=field_name)
    for raw in params.getlist("level"):
        query.levels.extend(_level_number(v, "level") for v in raw.split(",") if v.strip())
    if params.get("min_level"):
        query.min_level = _level_number(params["min_level"], "min_level")
    if params.get("q"):
        query.words = words(params["q"])[:16]
    if params.get("since"):
        query.since_us = parse_time(params["since"], "since", now)
    if params.get("until"):
        query.until_us = parse_time(params["until"], "until", now)
    for name, target in (("service", query.services), ("environment", query.environments)):
        for raw in params.getlist(name):
            target.extend(v.strip() for v in raw.split(",") if v.strip())
    for key in params.keys():
        if key.startswith("attr."):
            name = key[5:]
            if not _ATTR_NAME.match(name):
                raise ApiError(400, "invalid_parameter", f"attribute name {name[:70]!r} must be 1-64 of A-Z a-z 0-9 _ . -", field=key)
            query.attributes[name] = params[key]
    if params.get("after_id"):
        query.after_id = as_bigint(params["after_id"])
        if query.after_id is None:
            raise ApiError(400, "invalid_parameter", "after_id must be an integer of at most 64 bits", field="after_id")
    if params.get("cursor"):
        query.cursor = _decode_cursor(params["cursor"])
    if params.get("limit"):
        try:
            limit = int(params["limit"])
        except ValueError:
            raise ApiError(400, "invalid_parameter", "limit must be an integer", field="limit") from None
        if not 1 <= limit <= max_limit:
            raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {max_limit}", field="limit")
        query.limit = limit
    return query


def build_sql(dialect: str, app_id: int, query: LogQuery) -> tuple[str, dict[str, Any]]:
    where = ["l.app_id = :app_id"]
    values: dict[str, Any] = {"app_id": app_id}
    if query.levels:
        names = []
        for i, level in enumerate(sorted(set(query.levels))):
            values[f"lv{i}"] = level
            names.append(f":lv{i}")
        where.append(f"l.level IN ({', '.join(names)})")
    if query.min_level is not None:
        where.append("l.level >= :min_level")
        values["min_level"] = query.min_level
    if min(query.levels or [0]) >= PROBLEM_LEVEL or (query.min_level or 0) >= PROBLEM_LEVEL:
        # Spelled out as a constant so both planners can use the partial index `logs_app_problems`
        # (only WARNING and above are indexed by level: see migrations/*/0005_level_index.sql).
        where.append(f"l.level >= {PROBLEM_LEVEL}")
    if query.since_us is not None:
        where.append("l.ts >= :since")
        values["since"] = query.since_us
    if query.until_us is not None:
        where.append("l.ts <= :until")
        values["until"] = query.until_us
    for column, items in (("service", query.services), ("environment", query.environments)):
        if items:
            names = []
            for i, item in enumerate(items):
                values[f"{column}{i}"] = item
                names.append(f":{column}{i}")
            where.append(f"l.{column} IN ({', '.join(names)})")
    for i, (name, value) in enumerate(query.attributes.items()):
        values[f"av{i}"] = value
        if dialect == "sqlite":
            values[f"ap{i}"] = f'$."{name}"'
            where.append(
                f"(CASE json_type(l.attributes, :ap{i}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"ELSE CAST(json_extract(l.attributes, :ap{i}) AS TEXT) END) = :av{i}"
            )
        else:
            values[f"an{i}"] = name
            where.append(f"(l.attributes ->> CAST(:an{i} AS TEXT)) = :av{i}")
    if query.words:
        if dialect == "sqlite":
            values["fts"] = " ".join(f'"{w}"' for w in query.words)
            if query.fts_min_id is None:
                where.append("l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH :fts)")
            else:
                values["fts_min_id"] = query.fts_min_id
                where.append("l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH :fts AND rowid >= :fts_min_id)")
        else:
            for i, word in enumerate(query.words):
                values[f"w{i}"] = word
                where.append(f"log_has_word(l.message, l.words, :w{i})")
    if query.after_id is not None:
        where.append("l.id > :after_id")
        values["after_id"] = query.after_id
    if query.cursor is not None:
        where.append("(l.ts < :cts OR (l.ts = :cts AND l.id < :cid))")
        values["cts"], values["cid"] = query.cursor
    values["limit"] = query.limit + 1
    order = "l.id ASC" if query.after_id is not None else "l.ts DESC, l.id DESC"
    if query.id_ranges:
        # One primary-key range scan per range. UNION ALL rather than a join with unnest(...):
        # the planner sees each range's bounds, so its estimate is the rows in the ranges, not
        # 0.5% of the table per range (which grows with the table and turns JIT on).
        arms = []
        for i, (first, last) in enumerate(query.id_ranges):
            values[f"rf{i}"], values[f"rl{i}"] = first, last
            arms.append(f"(SELECT {_SELECT} FROM logs l WHERE l.id BETWEEN :rf{i} AND :rl{i} AND {' AND '.join(where)})")
        return f"SELECT * FROM ({' UNION ALL '.join(arms)}) l ORDER BY {order} LIMIT :limit", values
    sql = f"SELECT {_SELECT} FROM logs l WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit"
    return sql, values


def row_to_api(row: Mapping[str, Any] | tuple[Any, ...]) -> dict[str, Any]:
    """A stored log as the API, the live tail and the dashboard show it."""
    r = dict(zip(COLUMNS, row)) if isinstance(row, tuple) else dict(row)
    attributes = r["attributes"]
    if isinstance(attributes, str):
        attributes = orjson.loads(attributes)
    exception = r["exception"]
    if isinstance(exception, str):
        exception = orjson.loads(exception)
    return {
        "id": int(r["id"]),
        "timestamp": format_ts(int(r["ts"])),
        "ts_us": int(r["ts"]),
        "level": r["level_name"],
        "level_number": int(r["level"]),
        "service": r["service"],
        "logger": r["logger"],
        "message": r["message"],
        "attributes": attributes or {},
        "exception": exception,
        "environment": r["environment"],
        "release": r["release"],
        "host": r["host"],
        "process_id": r["process_id"],
        "thread_name": r["thread_name"],
        "trace_id": r["trace_id"],
        "request_id": r["request_id"],
        "received_at": format_ts(int(r["received_at"])),
    }


_PROBE_MAX = 20_000


async def _sqlite_fts_bound(db: Any, app_id: int, query: LogQuery) -> int | None:
    """For a keyword query whose other filters leave few candidates (a level in the last hour,
    say), the smallest candidate id; -1 when there are none; None when there are too many to
    bother (then the plain full-text look-up is the better plan).

    FTS5 returns a word's whole posting list, and a common word's list spans all stored logs;
    with a rowid bound it seeks past the old part (figures in docs/benchmarks.md).
    """
    narrowed = query.since_us is not None or query.levels or query.min_level is not None or query.after_id is not None
    if not narrowed:
        return None
    probe = LogQuery(**{**query.__dict__, "words": [], "limit": _PROBE_MAX})
    sql, values = build_sql("sqlite", app_id, probe)
    inner = sql.replace(_SELECT, "l.id", 1).split(" ORDER BY ")[0] + " LIMIT :limit"
    sql = f"SELECT MIN(id) AS min_id, COUNT(*) AS n FROM ({inner})"
    row = await db.fetch_one(sql, values)
    if row is None or not row["n"]:
        return -1
    if row["n"] > _PROBE_MAX:
        return None
    return int(row["min_id"])


# PostgreSQL word blocks (server/_pg_writer.py). More matching blocks than this: the words are
# common, and the plain query finds a page of them soon enough scanning newest first.
_BLOCKS_MAX = 2_000
# With other filters too, logs passing those are counted up to this many (or the blocks' span,
# if smaller): when fewer, reading them beats reading the blocks.
_PG_PROBE_MAX = 100_000
# Blocks are read a chunk at a time until no unread block can change the page: a chunk spans
# at most this many ids (the first one less, each next one twice the last) and this many ranges.
_CHUNK_IDS_FIRST = 4_096
_CHUNK_IDS_MAX = 131_072
_CHUNK_RANGES_MAX = 64
# Ranges this close are read as one: a few rows of other commits cost less than a range scan.
_RANGE_GAP_MAX = 64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


async def _pg_blocks(db: Any, app_id: int, query: LogQuery) -> list[dict[str, Any]] | None:
    """The word blocks of the app that may hold a log the query returns, or None when they are
    too many (or a word is too long to be in blocks)."""
    block_words = [w for w in query.words if len(w) <= BLOCK_WORD_MAX]
    if len(block_words) < len(query.words):
        return None
    ts_to = _INT64_MAX if query.until_us is None else query.until_us
    if query.cursor is not None:
        ts_to = min(ts_to, query.cursor[0])
    blocks = await db.fetch_all(
        "SELECT first_id, last_id, min_ts, max_ts FROM log_word_blocks_holding("
        ":app_id, CAST(:words AS TEXT[]), :ts_from, :ts_to, :after_id, :max_blocks)",
        {"app_id": app_id, "words": block_words, "ts_from": _INT64_MIN if query.since_us is None else query.since_us,
         "ts_to": ts_to, "after_id": _INT64_MIN if query.after_id is None else query.after_id,
         "max_blocks": _BLOCKS_MAX + 1},
    )
    return None if len(blocks) > _BLOCKS_MAX else blocks


def _ranges(blocks: list[dict[str, Any]]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for block in sorted(blocks, key=lambda b: int(b["first_id"])):
        first, last = int(block["first_id"]), int(block["last_id"])
        if ranges and first <= ranges[-1][1] + 1 + _RANGE_GAP_MAX:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))
    return ranges


async def _pg_keyword_rows(db: Any, app_id: int, query: LogQuery) -> list[dict[str, Any]] | None:
    """The page's rows (up to limit + 1, in the query's order) of a keyword query, found
    through the word blocks; None when the plain query is the better plan.

    Every log lies in the id range of a block of its app whose words include the log's words,
    so a log can match only inside the range of a block holding every query word. Blocks are
    read in the page's order (newest max_ts first, or lowest first id for `after_id`), a chunk
    at a time, and reading stops once the page is full and its last row comes before anything
    the next block could hold.
    """
    blocks = await _pg_blocks(db, app_id, query)
    if not blocks:
        return blocks
    narrowed = query.since_us is not None or query.levels or query.min_level is not None or query.after_id is not None
    if narrowed:
        # Fewer logs pass the other filters than the blocks span: reading those is cheaper.
        cap = min(sum(int(b["last_id"]) - int(b["first_id"]) + 1 for b in blocks), _PG_PROBE_MAX)
        probe = LogQuery(**{**query.__dict__, "words": [], "limit": cap})
        sql, values = build_sql("postgresql", app_id, probe)
        # `1`, not the id: the count then comes from the index alone where it covers the filters.
        inner = sql.replace(_SELECT, "1", 1).split(" ORDER BY ")[0] + " LIMIT :limit"
        if await db.fetch_val(f"SELECT COUNT(*) FROM ({inner}) AS candidates", values) <= cap:
            return None
    by_id = query.after_id is not None
    if by_id:
        blocks.sort(key=lambda b: int(b["first_id"]))
    else:
        blocks.sort(key=lambda b: int(b["max_ts"]), reverse=True)
    need = query.limit + 1
    page: list[dict[str, Any]] = []
    budget, i = _CHUNK_IDS_FIRST, 0
    while i < len(blocks):
        if len(page) >= need:
            edge, upcoming = page[need - 1], blocks[i]
            if (edge["id"] < upcoming["first_id"]) if by_id else (edge["ts"] > upcoming["max_ts"]):
                break
        chunk: list[dict[str, Any]] = []
        ids = 0
        while i < len(blocks) and len(chunk) < _CHUNK_RANGES_MAX:
            size = int(blocks[i]["last_id"]) - int(blocks[i]["first_id"]) + 1
            if chunk and ids + size > budget:
                break
            chunk.append(blocks[i])
            ids += size
            i += 1
        budget = min(budget * 2, _CHUNK_IDS_MAX)
        sql, values = build_sql("postgresql", app_id, replace(query, id_ranges=_ranges(chunk)))
        found = {int(r["id"]): r for r in page}  # a row is read twice only where ranges overlap
        for row in await db.fetch_all(sql, values):
            found.setdefault(int(row["id"]), row)
        if by_id:
            page = sorted(found.values(), key=lambda r: int(r["id"]))[:need]
        else:
            page = sorted(found.values(), key=lambda r: (-int(r["ts"]), -int(r["id"])))[:need]
    return page


async def run_log_query(db: Any, app_id: int, query: LogQuery) -> dict[str, Any]:
    """One page of logs and the cursor of the next page (None on the last page)."""
    rows: list[dict[str, Any]] | None = None
    if db.dialect == "sqlite" and query.words:
        bound = await _sqlite_fts_bound(db, app_id, query)
        if bound == -1:
            return {"logs": [], "next_cursor": None, **({"has_more": False} if query.after_id is not None else {})}
        query.fts_min_id = bound
    elif query.words:
        rows = await _pg_keyword_rows(db, app_id, query)
    if rows is None:
        sql, values = build_sql(db.dialect, app_id, query)
        rows = await db.fetch_all(sql, values)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = None
    if more and rows and query.after_id is None:
        next_cursor = encode_cursor(int(rows[-1]["ts"]), int(rows[-1]["id"]))
    logs = [row_to_api(r) for r in rows]
    result: dict[str, Any] = {"logs": logs, "next_cursor": next_cursor}
    if query.after_id is not None:
        result["has_more"] = more
    return result

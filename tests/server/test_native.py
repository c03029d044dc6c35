"""server.native: the C speed-ups store exactly what the Python paths store."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server import _pg_writer, native
from server._pg_writer import COPY_COLUMNS, COPY_KINDS, copy_logs, copy_records, copy_stream, prepare_copy
from server.db import DB
from server.fulltext import BLOCK_WORD_MAX, PyWordSet, split_words, word_text
from server.ingest_validate import EPOCH_S_MAX
from server.migrate import apply_migrations

needs_speedups = pytest.mark.skipif(not native.built, reason="server._speedups is not built")
_TYPES = {"bigint": "q", "smallint": "h", "text": "t", "jsonb": "j"}

# Rows of one value of each kind at its limits, NULLs, and text that is not ASCII (its words
# text made by the writer), one a request record; ids None, as the requests make them.
_ROWS: list[tuple[Any, ...]] = [
    (None, 1, 0, 1, 10, "DEBUG", "", "", "plain", None, None, "prod", "", "", None, "", "", ""),
    (None, 1, -(2**63), 2**63 - 1, -32768, "INFO", "api", "app.main", "caf\u00e9 \u65e5\u672c \U0001f600 tab\tnew\nline",
     '{"a": [1, {"b": "\u00e9"}], "n": null}', "Traceback\n  x", "", "1.2", "h\u00f6st", -(2**63), "Thread-1",
     "t" * 300, "r"),
    (None, 1, 5, 6, 50, "CRITICAL", "s", "l", "x" * 100_000, "{}", "", "e", "r", "h", 2**63 - 1, "", "", ""),
]
_FIELDS = {1: ("GET /x", 2**62, 32767)}
_NOT_ASCII = "caf\u00e9 \u65e5\u672c \U0001f600 tab\tnew\nline"


def _run_pg(database_url: str, go: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        db = DB(database_url)
        await db.connect()
        try:
            await apply_migrations(db)
            async with db.raw() as conn:
                await go(conn)
        finally:
            await db.disconnect()

    asyncio.run(main())


def test_ci_builds_the_speedups() -> None:
    """The install compiles them (setup.py); without a compiler the server still runs,
    slower, so CI insists on them rather than let a broken build pass unnoticed."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        assert native.built


@pytest.mark.parametrize("backend", ["postgresql"])
def test_copy_kinds_are_the_logs_tables_column_types(empty_database_url: str) -> None:
    async def go(conn: Any) -> None:
        types = dict(await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'logs'"))
        assert set(types) == set(COPY_COLUMNS)
        assert "".join(_TYPES[types[name]] for name in COPY_COLUMNS) == COPY_KINDS

    _run_pg(empty_database_url, go)


@needs_speedups
@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_c_copy_stores_what_asyncpg_stores(empty_database_url: str) -> None:
    batches = [prepare_copy(_ROWS[:2], [(1, *_FIELDS[1])]), prepare_copy(_ROWS[2:])]
    records = copy_records(batches, 41)
    data = copy_stream(batches, 41)

    async def go(conn: Any) -> None:
        await conn.execute("CREATE TABLE by_asyncpg (LIKE logs); CREATE TABLE by_c (LIKE logs)")
        await conn.copy_records_to_table("by_asyncpg", records=records, columns=COPY_COLUMNS)
        await conn.copy_to_table("by_c", source=memoryview(data), columns=COPY_COLUMNS, format="binary")
        columns = ", ".join(COPY_COLUMNS)
        by_asyncpg = [tuple(r) for r in await conn.fetch(f"SELECT {columns} FROM by_asyncpg ORDER BY id")]
        by_c = [tuple(r) for r in await conn.fetch(f"SELECT {columns} FROM by_c ORDER BY id")]
        assert by_c == by_asyncpg
        assert [r[0] for r in by_c] == [41, 42, 43] and by_c[1][8] == _NOT_ASCII and by_c[2][8] == "x" * 100_000
        assert by_c[1][2:5] == (-(2**63), 2**63 - 1, -32768)
        assert [r[18:] for r in by_c] == [(None, None, None, None), (*_FIELDS[1], word_text(_NOT_ASCII)),
                                          (None, None, None, None)]
        assert await conn.fetchval("SELECT attributes -> 'a' -> 1 ->> 'b' FROM by_c WHERE id = 42") == "\u00e9"

    _run_pg(empty_database_url, go)


@needs_speedups
def test_the_c_copy_frames_the_stream() -> None:
    copy_rows = native.copy_rows
    assert copy_rows is not None
    assert copy_rows([], 1, "qt", 1, word_text) == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + b"\xff\xff"
    one = copy_rows([([(None, None, "\u00e9", "{}")], None)], 7, "qhtjt", 2, lambda m: "w")
    assert one[19:-2] == (b"\x00\x05" + b"\x00\x00\x00\x08" + (7).to_bytes(8, "big") + b"\xff\xff\xff\xff"
                          + b"\x00\x00\x00\x02" + "\u00e9".encode() + b"\x00\x00\x00\x03\x01{}" + b"\x00\x00\x00\x01w")


@needs_speedups
@pytest.mark.parametrize(("batches", "kinds", "error", "says"), [
    ([([(None, "2", "m")], None)], "qqtt", TypeError, "row 0, column 1: an int expected, not str"),
    ([([(None, 1, "m")], None), ([(None, 2.5, "m")], None)], "qqtt", TypeError, "row 1, column 1: an int expected, not float"),
    ([([(None, 1, 5)], None)], "qqtt", TypeError, "row 0, column 2: a str expected, not int"),
    ([([(None, 40000, "m")], None)], "qhtt", OverflowError, "row 0, column 1: 40000 is out of the column's range"),
    ([([(None, 2**63, "m")], None)], "qqtt", OverflowError, "row 0, column 1"),
    ([([(None, 1, "m", 4)], None)], "qqtt", ValueError, "row 0: 4 values, 4 columns"),
    ([([(None, 1, "m")], {0: ("a", "b")})], "qqttt", ValueError, "row 0: its fields must be a tuple of 1 values"),
    ([([[None, 1, "m"]], None)], "qqtt", TypeError, "row 0: a tuple expected, not list"),
    ([[[(None, 1, "m")]]], "qqtt", TypeError, "batch 0: a \\(rows: list, fields: dict \\| None\\) pair expected"),
    ([([(None, 1, "\ud800")], None)], "qqtt", UnicodeEncodeError, "surrogates not allowed"),
    ([([(None, 1, "m")], None)], "qxtt", ValueError, "unknown kind x"),
    ([([(None, 1, "m")], None)], "t", ValueError, "one letter per column"),
])
def test_the_c_copy_refuses_what_it_cannot_encode(batches: list[Any], kinds: str, error: type[Exception], says: str) -> None:
    assert native.copy_rows is not None
    with pytest.raises(error, match=says):
        native.copy_rows(batches, 1, kinds, 2, word_text)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_writer_stores_the_same_rows_with_or_without_the_speedups(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go(conn: Any) -> None:
        stored = []
        for encoder in (None, native.copy_rows):
            monkeypatch.setattr(_pg_writer, "copy_rows", encoder)
            async with conn.transaction():
                await copy_logs(conn, _ROWS, first_id=1)
                stored.append([tuple(r) for r in await conn.fetch(f"SELECT {', '.join(COPY_COLUMNS)} FROM logs ORDER BY id")])
                await conn.execute("DELETE FROM logs; DELETE FROM log_word_blocks")
        assert stored[0] == stored[1] or not native.built
        assert [r[8] for r in stored[0]] == [r[8] for r in _ROWS]

    _run_pg(empty_database_url, go)


def test_a_server_without_them_says_so(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("server")
    native.log_missing(log)
    assert caplog.records == [] or not native.built
    monkeypatch.setattr(native, "built", False)
    native.log_missing(log)
    assert [r.levelname for r in caplog.records][-1] == "WARNING"
    assert "server._speedups is not built" in caplog.records[-1].getMessage()


def _word_sets() -> tuple[Any, PyWordSet]:
    assert native.built
    from server._speedups import WordSet

    return WordSet(split_words), PyWordSet()


def _words(text: str) -> set[str]:
    return set(text.split(" ")) - {""}


@needs_speedups
def test_the_c_word_set_holds_what_the_python_one_holds() -> None:
    rng = random.Random(11)
    alphabet = [chr(c) for c in range(128)] * 3 + list("éÉßΣσςİıﬁ٣\u00a0\U0001f600")
    fixed = ["", " ", "__", "a_b", "Foo-BAR baz_9 x\x1cy\x1fz\tq\x0bw", "Échec à ZÜRICH_x2 payment", "ÀB-cd Ω1 and Σίσυφος",
             "x" * 300 + " short", "é" * (BLOCK_WORD_MAX + 1) + " é" * BLOCK_WORD_MAX, "A" * BLOCK_WORD_MAX]
    c_set, py_set = _word_sets()
    for round_ in range(40):
        texts = fixed if round_ == 0 else ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
                                           for _ in range(rng.randrange(30))]
        c_set.add_texts(texts)
        py_set.add_texts(texts)
        assert len(c_set) == len(py_set)
        for limit in (3, BLOCK_WORD_MAX, 10_000):
            assert _words(c_set.text(limit)) == _words(py_set.text(limit)), (round_, limit)
    assert len(c_set) > 1024  # the table (1,024 slots at first, at most half used) grew twice or more
    assert "ZÜRICH" not in c_set.text(BLOCK_WORD_MAX) and "zürich" in _words(c_set.text(BLOCK_WORD_MAX))
    assert "x" * 300 not in _words(c_set.text(BLOCK_WORD_MAX)) and "x" * 300 in _words(c_set.text(300))


@needs_speedups
def test_a_word_set_copies() -> None:
    a, _ = _word_sets()
    a.add_texts(["alpha beta", "Gamma", "épsilon"])
    twin = a.copy()
    a.add_texts(["delta"])
    assert _words(twin.text(99)) == {"alpha", "beta", "gamma", "épsilon"} and len(twin) == 4 and len(a) == 5
    assert a.text(99).count(" ") == 4 and _words(_word_sets()[0].text(99)) == set()
    with pytest.raises(TypeError, match="item 1 is int, not str"):
        a.add_texts(["ok", 5])


@needs_speedups
def test_a_word_set_frees_itself_and_its_split() -> None:
    from server._speedups import WordSet

    class Split:
        def __call__(self, text: str) -> list[str]:
            return split_words(text)

    split = Split()
    ws = WordSet(split)
    ws.add_texts(["é ok"])
    del ws
    gc.collect()
    assert sys.getrefcount(split) == 2



def test_the_c_rows_know_the_timestamp_limit() -> None:
    assert EPOCH_S_MAX == 1e12  # server/_c/log_rows.c's EPOCH_S_MAX

"""Keyword search answers on both databases, also where PostgreSQL's word blocks could go wrong.

On PostgreSQL a keyword query first finds the blocks (one per app per commit) holding every
word, then checks rows only inside their id ranges. Each case below is compared with the answer
worked out here from the stored messages, under every plan the query may take: the default,
one block per chunk (many chunks merged), blocks even where other filters leave few logs, and
the plain row scan without blocks. SQLite ignores those knobs and must give the same answers.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from server import _pg_writer, logs_query
from server import writer as writer_module
from server._pg_writer import prepare_copy
from server.db import DB
from server.fulltext import PyWordSet, distinct_words, word_text, words
from server.logs_query import parse_log_query, run_log_query
from server.migrate import apply_migrations
from server.settings import Settings
from server.writer import Batch, LogWriter
from tests.conftest import AppFixture, Client, ingest_key

BASE_US = 1_700_000_000_000_000
APP_A, APP_B = 1, 2

PLANS: dict[str, dict[str, int]] = {
    "default": {},
    "one block per chunk": {"_CHUNK_IDS_FIRST": 1, "_CHUNK_IDS_MAX": 1, "_CHUNK_RANGES_MAX": 1, "_RANGE_GAP_MAX": 0},
    "blocks despite narrow filters": {"_PG_PROBE_MAX": 0, "_CHUNK_IDS_FIRST": 1, "_CHUNK_IDS_MAX": 2},
    "plain row scan": {"_BLOCKS_MAX": 0},
}


@contextmanager
def plan(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[None]:
    with monkeypatch.context() as patch:
        for knob, value in PLANS[name].items():
            patch.setattr(logs_query, knob, value)
        yield


@dataclass
class Stored:
    app_id: int
    ts: int
    seq: int  # insertion order, which is id order
    message: str


def _row(app_id: int, ts: int, message: str) -> tuple[Any, ...]:
    return (None, app_id, ts, ts, 20, "INFO", "web", "", message, None, None, "", "", "", None, "", "", "")


def _batch(db: DB, app_id: int, key_id: int, rows: list[tuple[Any, ...]]) -> Batch:
    batch = Batch(app_id, key_id, rows)
    if db.dialect == "postgresql":
        batch.copy = prepare_copy(rows)  # as server.ingest does
    return batch


class Logs:
    """A real writer and database, and what was stored, to work out the expected answers."""

    def __init__(self, db: DB, writer: LogWriter, key_id: int) -> None:
        self.db, self.writer, self.key_id = db, writer, key_id
        self.stored: list[Stored] = []

    async def commit(self, *batches: tuple[int, list[tuple[int, str]]]) -> None:
        """One commit (one transaction) holding every batch: (app id, [(ts, message), ...]),
        handed over as ingest requests do (on PostgreSQL with their COPY data and words)."""
        futures = []
        for app_id, logs in batches:
            for ts, message in logs:
                self.stored.append(Stored(app_id, ts, len(self.stored), message))
            futures.append(self.writer.submit(_batch(self.db, app_id, self.key_id, [_row(app_id, ts, m) for ts, m in logs])))
        await asyncio.gather(*futures)

    def expected(self, app_id: int, q: str, since: int | None = None, after: str | None = None) -> list[str]:
        wanted = set(words(q))
        found = [s for s in self.stored if s.app_id == app_id and wanted <= set(words(s.message))
                 and (since is None or s.ts >= since)]
        if after is not None:
            after_seq = next(s.seq for s in self.stored if s.message == after)
            return [s.message for s in sorted(found, key=lambda s: s.seq) if s.seq > after_seq]
        return [s.message for s in sorted(found, key=lambda s: (-s.ts, -s.seq))]

    async def search(self, app_id: int, q: str, limit: int, since: int | None = None) -> list[str]:
        """Every page, newest first, following the cursor."""
        out: list[str] = []
        params = {"q": q, "limit": str(limit)}
        while True:
            query = parse_log_query(QueryParams(params), 100, 1000)
            query.since_us = since
            page = await run_log_query(self.db, app_id, query)
            out += [log["message"] for log in page["logs"]]
            assert len(page["logs"]) <= limit
            if not page["next_cursor"]:
                return out
            params["cursor"] = page["next_cursor"]

    async def search_after(self, app_id: int, q: str, after: str, limit: int) -> tuple[list[str], bool]:
        ids = {log["message"]: log["id"] for log in (await run_log_query(
            self.db, app_id, parse_log_query(QueryParams({"limit": "1000"}), 100, 1000)))["logs"]}
        query = parse_log_query(QueryParams({"q": q, "limit": str(limit), "after_id": str(ids[after])}), 100, 1000)
        page = await run_log_query(self.db, app_id, query)
        return [log["message"] for log in page["logs"]], page["has_more"]


def with_logs(settings: Settings, fill: Any, check: Any) -> None:
    async def go() -> None:
        db = DB(settings.database_url)
        await db.connect()
        await apply_migrations(db)
        writer = LogWriter(db, max_queue_records=100_000, max_commit_records=100_000, batch_retention_hours=1)
        await writer.start()
        try:
            logs = Logs(db, writer, await ingest_key(db))
            await fill(logs)
            await check(logs)
        finally:
            await writer.stop()
            await db.disconnect()

    asyncio.run(go())


async def _fill_many_commits(logs: Logs) -> None:
    """24 commits of app A, 12 logs each; app B in every other commit. Commits' time ranges
    overlap and are not in commit order, and one log of every commit shares the same ts."""
    for k in range(24):
        start = BASE_US + ((k * 7) % 24) * 10_000_000
        batch_a = []
        for j in range(12):
            ts = BASE_US + 100_000_000 if j == 0 else start + j * 1_000_000
            text = f"a{k}x{j} hay"
            if k % 3 == 0 and j in (0, k % 12):
                text += " needle"  # in 8 of the 24 commits, one or two logs each
            if k % 4 == 0 and j == 1:
                text += " alpha"
            if k % 4 == 0 and j == 2:
                text += " beta"  # alpha and beta in the same block, never in the same log ...
            if k == 20 and j == 3:
                text += " alpha beta"  # ... except this one
            batch_a.append((ts, text))
        batches: list[tuple[int, list[tuple[int, str]]]] = [(APP_A, batch_a)]
        if k % 2 == 0:
            batches.append((APP_B, [(start + j, f"b{k}x{j} needle alpha beta onlyb") for j in range(5)]))
        await logs.commit(*batches)


@pytest.mark.parametrize("plan_name", list(PLANS))
def test_keyword_pages_over_many_commits_match_the_stored_messages(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, plan_name: str
) -> None:
    async def check(logs: Logs) -> None:
        with plan(monkeypatch, plan_name):
            for q, limit in (("needle", 3), ("needle", 1), ("needle", 100), ("hay", 7), ("alpha beta", 2),
                             ("ALPHA", 2), ("onlyb", 5), ("bravo", 5), ("needle hay a0x0", 2)):
                assert await logs.search(APP_A, q, limit) == logs.expected(APP_A, q), (q, limit)
            assert await logs.search(APP_A, "alpha beta", 5) == ["a20x3 hay alpha beta"]
            assert await logs.search(APP_A, "onlyb", 5) == []  # only app B's logs (same commits) have it
            assert len(await logs.search(APP_B, "needle", 4)) == 12 * 5
            since = BASE_US + 120_000_000
            for q in ("needle", "hay", "alpha"):
                assert await logs.search(APP_A, q, 2, since=since) == logs.expected(APP_A, q, since=since), q

    with_logs(settings, _fill_many_commits, check)


@pytest.mark.parametrize("plan_name", list(PLANS))
def test_after_id_finds_newer_matches_oldest_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, plan_name: str
) -> None:
    async def check(logs: Logs) -> None:
        with plan(monkeypatch, plan_name):
            for q, after, limit in (("needle", "a3x0 hay needle", 3), ("needle", "a0x0 hay needle", 100),
                                    ("alpha", "a4x1 hay alpha", 2), ("needle", "a21x9 hay needle", 5),
                                    ("hay", "a23x5 hay", 10)):
                expected = logs.expected(APP_A, q, after=after)
                got, more = await logs.search_after(APP_A, q, after, limit)
                assert got == expected[:limit] and more == (len(expected) > limit), (q, after, limit)

    with_logs(settings, _fill_many_commits, check)


def test_a_block_matches_but_its_other_logs_do_not(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fill(logs: Logs) -> None:
        await logs.commit((APP_A, [(BASE_US + i, f"request {i} served") for i in range(200)]
                           + [(BASE_US + 500, "disk quota exceeded")]))

    async def check(logs: Logs) -> None:
        for name in PLANS:
            with plan(monkeypatch, name):
                assert await logs.search(APP_A, "quota", 10) == ["disk quota exceeded"]
                assert await logs.search(APP_A, "served quota", 10) == []
                assert await logs.search(APP_A, "request 7", 10) == ["request 7 served"]

    with_logs(settings, fill, check)


def test_two_apps_in_one_commit_keep_their_words_apart(settings: Settings, backend: str) -> None:
    async def fill(logs: Logs) -> None:
        await logs.commit((APP_A, [(BASE_US, "payment accepted"), (BASE_US + 1, "cart emptied")]),
                          (APP_B, [(BASE_US + 2, "payment declined fraud")]),
                          (APP_A, [(BASE_US + 3, "user signed out")]))

    async def check(logs: Logs) -> None:
        assert await logs.search(APP_A, "fraud", 10) == []
        assert await logs.search(APP_A, "payment declined", 10) == []
        assert await logs.search(APP_A, "payment", 10) == ["payment accepted"]
        assert await logs.search(APP_B, "payment", 10) == ["payment declined fraud"]
        assert await logs.search(APP_A, "signed", 10) == ["user signed out"]
        if backend == "postgresql":
            blocks = await logs.db.fetch_all("SELECT app_id, first_id, last_id, min_ts, max_ts, words "
                                             "FROM log_word_blocks ORDER BY app_id")
            assert [(b["app_id"], b["first_id"], b["last_id"], b["min_ts"], b["max_ts"]) for b in blocks] == [
                (APP_A, 1, 4, BASE_US, BASE_US + 3), (APP_B, 3, 3, BASE_US + 2, BASE_US + 2)]
            assert sorted(blocks[0]["words"]) == sorted(["payment", "accepted", "cart", "emptied", "user", "signed", "out"])
            assert sorted(blocks[1]["words"]) == ["declined", "fraud", "payment"]

    with_logs(settings, fill, check)


MIXED = ["Échec à ZÜRICH_x2 payment", "plain ASCII payment ok", "Straße gesperrt: 3 Fahrzeuge", "x\u00a0y tab\tsep",
         "ÀB-cd Ω1 and Σίσυφος", "user=42 ok"]


def test_ascii_and_unicode_messages_in_one_batch_are_found_alike(
    settings: Settings, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stores the words text of non-ASCII messages only and derives the others'
    (log_words, migration 0008); one batch mixing both takes the slower path of block_words."""
    async def fill(logs: Logs) -> None:
        await logs.commit((APP_A, [(BASE_US + i, m) for i, m in enumerate(MIXED)]))

    async def check(logs: Logs) -> None:
        for name in PLANS:
            with plan(monkeypatch, name):
                for q in ("payment", "échec", "ZÜRICH", "x2", "straße", "ok", "ÀB cd", "ω1", "σίσυφος", "42", "y",
                          "tab sep", "user 42", "absent"):
                    assert await logs.search(APP_A, q, 2) == logs.expected(APP_A, q), (name, q)
        if backend == "postgresql":
            stored = {r["message"]: r["words"] for r in await logs.db.fetch_all("SELECT message, words FROM logs")}
            assert stored == {m: None if m.isascii() else word_text(m) for m in MIXED}
            block = await logs.db.fetch_val("SELECT words FROM log_word_blocks")
            assert sorted(block) == sorted({w for m in MIXED for w in words(m)})

    with_logs(settings, fill, check)


def test_postgresql_derives_an_ascii_messages_words_exactly(pg_url: str) -> None:
    """log_words(message, NULL) is word_text(message) for ASCII messages (every character, and
    random strings of them), and log_has_word finds exactly their words."""
    rng = random.Random(11)
    alphabet = [chr(c) for c in range(1, 128)]
    samples = [f"a{c}B{c}" for c in alphabet] + ["", " ", "Foo-BAR baz_9", "GET /api/v1/items/42?x=1&y=%20", "it's \\ done"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(500)]

    async def go() -> None:
        db = DB(pg_url)
        await db.connect()
        try:
            await apply_migrations(db)
            async with db.raw() as conn:
                derived = await conn.fetch("SELECT m, log_words(m, NULL) AS w FROM unnest($1::text[]) AS m", samples)
                stored = await conn.fetchval("SELECT log_words('ASCII TEXT', ' stored words ')")
                # every word of a sample, and parts of words (substrings that are no word)
                pairs = [(m, w) for m in samples[:200] for w in {*words(m), *(w[1:] for w in words(m) if len(w) > 1)}]
                has = await conn.fetch("SELECT m, w, log_has_word(m, NULL, w) AS has "
                                       "FROM unnest($1::text[], $2::text[]) AS x (m, w)", *map(list, zip(*pairs)))
                stored_has = await conn.fetchval("SELECT log_has_word('other TEXT', ' stored words ', 'stored')")
        finally:
            await db.disconnect()
        assert [(r["m"], r["w"]) for r in derived] == [(m, word_text(m)) for m in samples]
        assert stored == " stored words " and stored_has is True
        assert [(r["m"], r["w"], r["has"]) for r in has] == [(m, w, w in words(m)) for m, w in pairs]

    asyncio.run(go())


def test_distinct_words_is_the_union_of_each_texts_words() -> None:
    rng = random.Random(5)
    alphabet = [chr(c) for c in range(128)] + list("éÉßΣσςİıﬁ٣")
    for _ in range(300):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(rng.randrange(6))]
        assert distinct_words(texts) == {w for t in texts for w in words(t)}, texts


def test_a_word_too_long_for_blocks_is_stored_and_found(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Words over 256 characters stay out of word blocks (a GIN key holds at most 2,712 bytes,
    which once failed the whole commit); queries for them read the rows."""
    long_word = secrets.token_hex(2000)  # 4,000 letters and digits: one word, incompressible

    async def fill(logs: Logs) -> None:
        await logs.commit((APP_A, [(BASE_US, f"blob {long_word} end"), (BASE_US + 1, "blob short end")]))

    async def check(logs: Logs) -> None:
        for name in PLANS:
            with plan(monkeypatch, name):
                assert await logs.search(APP_A, long_word, 10) == [f"blob {long_word} end"]
                assert await logs.search(APP_A, f"end {long_word}", 10) == [f"blob {long_word} end"]
                assert await logs.search(APP_A, "blob", 10) == ["blob short end", f"blob {long_word} end"]

    with_logs(settings, fill, check)


class RecordingDB:
    """The database, noting every statement the query runs."""

    def __init__(self, db: DB) -> None:
        self.db, self.dialect = db, db.dialect
        self.statements: list[str] = []

    async def fetch_all(self, sql: str, values: Any = None) -> Any:
        self.statements.append(sql)
        return await self.db.fetch_all(sql, values)

    async def fetch_one(self, sql: str, values: Any = None) -> Any:
        self.statements.append(sql)
        return await self.db.fetch_one(sql, values)

    async def fetch_val(self, sql: str, values: Any = None) -> Any:
        self.statements.append(sql)
        return await self.db.fetch_val(sql, values)


def test_no_matching_block_answers_without_reading_logs(settings: Settings, backend: str) -> None:
    async def fill(logs: Logs) -> None:
        await logs.commit((APP_A, [(BASE_US, "all quiet")]), (APP_B, [(BASE_US, "thunder")]))

    async def check(logs: Logs) -> None:
        recording = RecordingDB(logs.db)
        for params in ({"q": "thunder"}, {"q": "thunder", "since": "1h"}, {"q": "thunder", "after_id": "0"}):
            page = await run_log_query(recording, APP_A, parse_log_query(QueryParams(params), 100, 1000))
            assert page["logs"] == [] and page["next_cursor"] is None
        if backend == "postgresql":
            assert recording.statements and not [s for s in recording.statements if "FROM logs" in s]

    with_logs(settings, fill, check)


def test_rare_word_over_many_requests_pages_through_the_api(client: Client, owned_app: AppFixture) -> None:
    now = time.time()
    expected = []
    for k in range(25):  # one commit each: each request waits for its commit
        logs = [{"timestamp": now - 3600 + k * 60 + i, "level": "INFO", "message": f"tick {k}.{i}"} for i in range(8)]
        logs[k % 8]["message"] = f"tick {k}.{k % 8} cache stampede"
        expected.append(logs[k % 8]["message"])
        assert client.post("/ingest", json={"api_key": owned_app.api_key, "logs": logs}).status_code == 202
    seen: list[str] = []
    params: dict[str, Any] = {"q": "Stampede", "limit": 4}
    while True:
        page = client.get(f"/api/apps/{owned_app.app_id}/logs", params=params).json()
        seen += [log["message"] for log in page["logs"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(reversed(expected))


def test_the_ascii_fast_path_splits_words_like_the_regular_expression() -> None:
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(128)]
    samples = ["", " ", "__", "a_b", "Foo-BAR baz_9 x\x1cy\x1fz\tq\x0bw", "GET /api/v1/items/42?x=1&y=%20"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(80))) for _ in range(2000)]
    for text in samples:
        assert text.isascii()
        assert words(text) == list(dict.fromkeys(re.findall(r"[^\W_]+", text.lower()))), repr(text)
    assert words("Échec à ZÜRICH_x2") == ["échec", "à", "zürich", "x2"]


def test_batches_left_for_a_later_commit_keep_their_words(settings: Settings) -> None:
    """More is queued than one commit takes (INGEST_COMMIT_MAX_RECORDS): on PostgreSQL the words
    the writer collected at submit are kept for the batches left queued, so every batch's own
    words find its logs whichever commit stored them (with the C word sets when built,
    server.native)."""
    _check_words_over_later_commits(settings)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_python_word_sets_keep_them_too(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with server.fulltext.PyWordSet, what a server without its C speed-ups uses."""
    monkeypatch.setattr(writer_module, "word_set", PyWordSet)
    monkeypatch.setattr(_pg_writer, "word_set", PyWordSet)
    _check_words_over_later_commits(settings)


def _check_words_over_later_commits(settings: Settings) -> None:
    async def go() -> None:
        db = DB(settings.database_url)
        await db.connect()
        await apply_migrations(db)
        writer = LogWriter(db, max_queue_records=100_000, max_commit_records=250, batch_retention_hours=1)
        try:
            key_id = await ingest_key(db)
            futures = []
            for i in range(20):
                rows = [_row(APP_A, BASE_US + i * 100 + j, f"batch{i} line {j} only{i}x{j} Zürich{i}x{j}") for j in range(100)]
                futures.append(writer.submit(_batch(db, APP_A, key_id, rows)))
            await writer.start()  # all 20 queued: commits of 2 batches, the others left queued
            await asyncio.gather(*futures)
            assert writer.stats["commits"] == 10
            for i in range(20):
                for q, expected in ((f"batch{i}", 100), (f"only{i}x57", 1), (f"batch{i} only{i}x3", 1), (f"zürich{i}x5", 1)):
                    query = parse_log_query(QueryParams({"q": q, "limit": "1000"}), 100, 1000)
                    assert len((await run_log_query(db, APP_A, query))["logs"]) == expected, q
        finally:
            await writer.stop()
            await db.disconnect()

    asyncio.run(go())

"""Health aggregates kept in memory and flushed now and then (server/health_pending.py): nothing
committed is counted twice or never, whether a writer's own roll-ups or rows read back."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from server import health_pending
from server.health_pending import FlushPlan, PendingHealth
from server.health_rollup import LEVEL_NUMBERS, MinuteDelta
from tests.conftest import Client
from tests.server.test_health import _generate, _raw


def _delta(n: int) -> MinuteDelta:
    return MinuteDelta(counts={(1, 0, "api", "INFO"): n})


def test_segments_cover_the_ids_after_the_watermark_in_order() -> None:
    pending = PendingHealth()
    for first, last in ((1, 10), (11, 20), (31, 40)):
        pending.add(first, last, [_delta(last - first + 1)])
    segments = pending.segments(10, 50, current=(41, 45, [_delta(5)]))
    # (1, 10) is below the watermark: another writer's flush counted it by reading it back
    assert [(s[0], s[1], s[2] is None) for s in segments] == [
        (11, 20, False), (21, 30, True), (31, 40, False), (41, 45, False), (46, 50, True)]
    pending.forget(40)
    assert [(s[0], s[1]) for s in pending.segments(40, 45)] == [(41, 45)]
    assert pending.segments(40, 45)[0][2] is None  # nothing known: read back


def test_flush_plan_reads_back_at_most_its_budget_and_says_how_far_it_got() -> None:
    segments = [(1, 5, [_delta(5)]), (6, 20, None), (21, 30, [_delta(10)])]
    plan = FlushPlan(list(segments), watermark=0, budget=4)
    reads = []
    for lo, hi, limit in plan.reads():
        reads.append((lo, hi, limit))
        plan.got([(i, 1, 0, 0, 20, "INFO", "api", "", "m", None) for i in range(lo, min(hi, lo + limit - 1) + 1)])
    assert reads == [(6, 20, 4)]
    assert plan.covered == 9  # ids 6-9 read; the rest (and the commit after) wait for the next flush
    assert plan.delta().counts == {(1, 0, "api", "INFO"): 9}
    whole = FlushPlan(list(segments), watermark=0, budget=100)
    for lo, hi, _ in whole.reads():
        whole.got([(i, 1, 0, 0, 20, "INFO", "api", "", "m", None) for i in range(lo, hi + 1, 2)])  # gaps in ids
    assert whole.covered == 30 and whole.delta().counts == {(1, 0, "api", "INFO"): 5 + 8 + 10}


def test_past_its_bound_pending_forgets_and_the_rows_are_read_back() -> None:
    pending = PendingHealth()
    pending.MAX_COMMITS = 3
    for i in range(4):
        pending.add(i * 10 + 1, i * 10 + 10, [_delta(10)])
    assert pending.forgotten == 1
    assert [(s[0], s[1], s[2] is None) for s in pending.segments(0, 40)] == [(1, 30, True), (31, 40, False)]


def _counts(client: Client, app_id: int) -> tuple[dict[Any, int], dict[Any, int]]:
    """(stored health_counts, the same computed from the raw rows)."""
    expected: Counter[tuple[int, str, int, int]] = Counter()
    for row in _raw(client, app_id):
        for res in (60, 3600, 86400):
            expected[(res, row["service"], row["ts"] // 1_000_000 // res * res, LEVEL_NUMBERS[row["level_name"]])] += 1
    stored = client.call(client.db.fetch_all, "SELECT res, service, start_s, level, records FROM health_counts "
                         "WHERE app_id = :a", {"a": app_id})
    return {(r["res"], r["service"], r["start_s"], r["level"]): r["records"] for r in stored}, dict(expected)


def _post(client: Client, key: str, logs: list[dict[str, Any]], size: int = 100) -> None:
    for i in range(0, len(logs), size):
        r = client.post("/ingest", json={"api_key": key, "logs": logs[i : i + size]})
        assert r.status_code == 202, r.text


def _watermark(client: Client) -> int:
    return int(client.call(client.db.fetch_val, "SELECT last_log_id FROM health_watermark WHERE id = 1"))


@pytest.fixture
def slow_flush(make_client: Any) -> tuple[Client, int, str]:
    """A client whose writer flushes only when asked (no timed flush during the test)."""
    client = make_client(health_flush_seconds=3600)
    client.sign_in(client.create_user("pending@example.com"))
    created = client.post("/api/apps", json={"name": "pending"}).json()
    return client, created["app"]["id"], created["api_key"]


def test_commits_wait_in_memory_until_the_api_reads(slow_flush: tuple[Client, int, str]) -> None:
    client, app_id, key = slow_flush
    _post(client, key, _generate(600, time.time()))  # six commits at least
    assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM health_counts") == 0
    assert client.app_state["writer"].pending_health
    body = client.get(f"/api/apps/{app_id}/health/volume", params={"since": "3d", "bucket": "1d"}).json()
    assert body["totals"]["total"] == 600  # the API had the writer flush first
    stored, expected = _counts(client, app_id)
    assert stored == expected
    assert _watermark(client) == client.call(client.db.fetch_val, "SELECT MAX(id) FROM logs")
    assert not client.app_state["writer"].pending_health


def test_roll_ups_lost_from_memory_are_read_back(slow_flush: tuple[Client, int, str]) -> None:
    """As after a crash: committed rows whose roll-ups never reached the tables are counted from `logs`."""
    client, app_id, key = slow_flush
    _post(client, key, _generate(300, time.time(), seed=2))
    client.call(client.app_state["writer"].flush_health)
    _post(client, key, _generate(500, time.time(), seed=3))
    client.app_state["writer"].pending_health.forget(10**12)  # what a crash loses
    client.call(client.app_state["writer"].flush_health)
    stored, expected = _counts(client, app_id)
    assert sum(expected.values()) == 3 * 800 and stored == expected


def test_a_flush_reads_back_at_most_its_budget(slow_flush: tuple[Client, int, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client, app_id, key = slow_flush
    _post(client, key, _generate(450, time.time(), seed=4))
    client.app_state["writer"].pending_health.forget(10**12)
    monkeypatch.setattr(health_pending, "READ_BACK_MAX", 200)
    marks = []
    for _ in range(3):
        client.call(client.app_state["writer"].flush_health)
        marks.append(_watermark(client))
    last = client.call(client.db.fetch_val, "SELECT MAX(id) FROM logs")
    assert marks[0] < marks[1] < marks[2] == last, marks
    stored, expected = _counts(client, app_id)
    assert stored == expected


def test_ids_never_go_back_below_the_watermark(slow_flush: tuple[Client, int, str]) -> None:
    """Deleting the newest logs must not let new rows reuse ids the health tables already counted."""
    client, app_id, key = slow_flush
    _post(client, key, _generate(100, time.time(), seed=5))
    client.call(client.app_state["writer"].flush_health)
    mark = _watermark(client)
    client.call(client.db.execute, "DELETE FROM logs")
    _post(client, key, _generate(50, time.time(), seed=6))
    assert client.call(client.db.fetch_val, "SELECT MIN(id) FROM logs") > mark
    client.call(client.app_state["writer"].flush_health)
    stored, expected = _counts(client, app_id)
    assert sum(expected.values()) == 3 * 50
    assert all(stored.get(k, 0) >= n for k, n in expected.items())  # the deleted rows stay counted

"""The health aggregator (server/health_aggregate.py): it counts every committed log once,
however passes, processes and ingest interleave."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from server import health_aggregate
from server.health_rollup import LEVEL_NUMBERS
from tests.conftest import Client
from tests.server.test_health import _generate, _raw


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
    return int(client.call(client.db.fetch_val, "SELECT COALESCE(MAX(last_log_id), 0) FROM health_watermark"))


def _newest(client: Client) -> int:
    return int(client.call(client.db.fetch_val, "SELECT MAX(id) FROM logs"))


@pytest.fixture
def idle_aggregator(make_client: Any) -> tuple[Client, int, str]:
    """A client whose aggregator counts only when asked (no timed pass during the test)."""
    client = make_client(health_flush_seconds=3600)
    client.sign_in(client.create_user("aggregate@example.com"))
    created = client.post("/api/apps", json={"name": "aggregate"}).json()
    return client, created["app"]["id"], created["api_key"]


def test_the_api_counts_what_was_committed_before_it_reads(idle_aggregator: tuple[Client, int, str]) -> None:
    client, app_id, key = idle_aggregator
    _post(client, key, _generate(600, time.time()))
    assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM health_counts") == 0  # nothing on the ingest path
    body = client.get(f"/api/apps/{app_id}/health/volume", params={"since": "3d", "bucket": "1d"}).json()
    assert body["totals"]["total"] == 600
    stored, expected = _counts(client, app_id)
    assert stored == expected
    assert _watermark(client) == _newest(client)
    stats = client.get("/healthz").json()["health_aggregator"]
    assert stats["passes"] >= 1 and stats["logs"] >= 600


def test_passes_add_up_whatever_their_ranges(idle_aggregator: tuple[Client, int, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass counts at most PASS_MAX_IDS ids; catching up takes several, each range once."""
    client, app_id, key = idle_aggregator
    _post(client, key, _generate(300, time.time(), seed=2))
    client.call(client.app_state["health_aggregator"].catch_up)
    _post(client, key, _generate(450, time.time(), seed=3))
    monkeypatch.setattr(health_aggregate, "PASS_MAX_IDS", 200)
    monkeypatch.setattr(health_aggregate, "CATCH_UP_MAX_PASSES", 1)
    marks = []
    for _ in range(3):
        client.call(client.app_state["health_aggregator"].catch_up)
        marks.append(_watermark(client))
    assert marks == [500, 700, 750] == [marks[0], marks[0] + 200, _newest(client)]
    stored, expected = _counts(client, app_id)
    assert sum(expected.values()) == 3 * 750 and stored == expected


def test_a_pass_is_dropped_when_another_counted_the_range(idle_aggregator: tuple[Client, int, str]) -> None:
    """As when two server processes race: the writer applies a pass only if the watermark is
    still the one the pass read."""
    client, app_id, key = idle_aggregator
    _post(client, key, _generate(100, time.time(), seed=4))
    client.call(client.app_state["health_aggregator"].catch_up)
    before = _counts(client, app_id)[0]
    mark = _watermark(client)
    if client.app_state["settings"].dialect == "sqlite":
        stale = client.call(client.app_state["writer"].apply_health, mark - 50, mark + 10, None)
        assert stale is False
    else:  # PostgreSQL passes hold the watermark row: a second process waits, then reads the new one
        client.call(client.app_state["health_aggregator"].catch_up)
    assert _watermark(client) == mark and _counts(client, app_id)[0] == before


def test_ids_never_go_back_below_the_watermark(idle_aggregator: tuple[Client, int, str]) -> None:
    """Deleting the newest logs must not let new rows reuse ids the health tables already counted."""
    client, app_id, key = idle_aggregator
    _post(client, key, _generate(100, time.time(), seed=5))
    client.call(client.app_state["health_aggregator"].catch_up)
    mark = _watermark(client)
    client.call(client.db.execute, "DELETE FROM logs")
    if client.app_state["settings"].dialect == "sqlite":  # request fields go with their logs
        assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM log_requests") == 0
    _post(client, key, _generate(50, time.time(), seed=6))
    assert client.call(client.db.fetch_val, "SELECT MIN(id) FROM logs") > mark
    client.call(client.app_state["health_aggregator"].catch_up)
    stored, expected = _counts(client, app_id)
    assert sum(expected.values()) == 3 * 50
    assert all(stored.get(k, 0) >= n for k, n in expected.items())  # the deleted rows stay counted


def test_the_aggregator_counts_on_its_own(make_client: Any) -> None:
    client = make_client(health_flush_seconds=0.05)
    client.sign_in(client.create_user("timed@example.com"))
    created = client.post("/api/apps", json={"name": "timed"}).json()
    _post(client, created["api_key"], _generate(200, time.time(), seed=7))
    deadline = time.monotonic() + 10
    while _watermark(client) < _newest(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    stored, expected = _counts(client, created["app"]["id"])
    assert stored == expected


def test_a_service_is_last_seen_at_its_newest_log_whatever_the_order(idle_aggregator: tuple[Client, int, str]) -> None:
    """health_services.last_seen is the newest min(ts, received_at) of a pass's logs, also when
    a later log (a larger id) of the same service, level and minute is older."""
    client, _, key = idle_aggregator
    minute = (int(time.time()) // 60 - 2) * 60
    logs = [{"timestamp": minute + s, "level": "INFO", "message": f"m{s}", "service": "svc"} for s in (5, 50, 20, 10)]
    _post(client, key, logs)
    client.call(client.app_state["health_aggregator"].catch_up)
    seen = client.call(client.db.fetch_val, "SELECT last_seen FROM health_services WHERE service = 'svc'")
    assert seen == (minute + 50) * 1_000_000

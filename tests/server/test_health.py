"""Health aggregates against the raw rows they summarise, on SQLite and PostgreSQL.

Records are generated around minute, hour and UTC/local day boundaries, ingested through
/ingest, and every figure the API returns is recomputed here from the stored logs with an
independent method (zoneinfo wall-clock flooring, exact sorted percentiles).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from server.health_retention import prune
from server.health_rollup import LEVEL_NUMBERS, fingerprint, request_route
from server.health_sketch import RELATIVE_ACCURACY, appended, bin_of, decode
from server.health_store import LatencyCache
from tests.conftest import AppFixture, Client

HEALTH_TABLES = "health_services, health_routes, health_counts, health_latency, health_errors"
SERVICES = ("api", "worker", "")
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR", "CRITICAL", 35, 45)
ROUTES = (("GET", "/items/{id}", "/items/7"), ("POST", "/orders", "/orders"), ("GET", None, "/users/42/cart"))


@pytest.fixture(autouse=True)
def _empty_health_tables(backend: str, database_url: str) -> Iterator[None]:
    """conftest truncates its own list of tables between PostgreSQL tests; these are ours."""
    if backend == "postgresql":
        async def truncate() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                if await conn.fetchval("SELECT to_regclass('public.health_counts') IS NOT NULL"):
                    await conn.execute(f"TRUNCATE {HEALTH_TABLES}")
            finally:
                await conn.close()

        asyncio.run(truncate())
    yield


def _record(rng: random.Random, ts: float) -> dict[str, Any]:
    level = rng.choice(LEVELS)
    service = rng.choice(SERVICES)
    record: dict[str, Any] = {"timestamp": ts, "level": level, "service": service,
                              "message": f"order {rng.randrange(100)} failed after {rng.randrange(5)} retries"}
    if rng.random() < 0.4:
        method, route, path = rng.choice(ROUTES)
        attributes: dict[str, Any] = {"method": method, "path": path, "status_code": 200,
                                      "duration_ms": round(rng.lognormvariate(math.log(30), 1.0), 3)}
        if route:
            attributes["route"] = route
        record["attributes"] = attributes
    return record


def _anchors(now: float) -> list[float]:
    """UTC midnights and hours, Kolkata (+05:30) midnights, in the last two days."""
    day = int(now // 86400) * 86400
    out = [day - 86400, day, day - 86400 + 18 * 3600 + 1800, day - 2 * 86400 + 18 * 3600 + 1800]
    out += [day - 3600 * h for h in (1, 5, 13)]
    return [a for a in out if a < now - 300]


def _generate(n: int, now: float, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    anchors = _anchors(now)
    logs = []
    for i in range(n):
        anchor = rng.choice(anchors)
        offset = rng.choice((0.0, -0.000001, 59.999999, 60.0, -60.0)) if i % 5 == 0 else rng.uniform(-250, 250)
        logs.append(_record(rng, anchor + offset))
    return logs


def _ingest(client: Client, key: str, logs: list[dict[str, Any]], size: int = 400) -> None:
    for i in range(0, len(logs), size):
        r = client.post("/ingest", json={"api_key": key, "logs": logs[i : i + size]})
        assert r.status_code == 202 and r.json()["rejected"] == 0, r.text
    client.call(client.app_state["health_aggregator"].catch_up)  # the tables are read directly


def _raw(client: Client, app_id: int) -> list[dict[str, Any]]:
    rows = client.call(client.db.fetch_all, "SELECT ts, received_at, level, level_name, service, message, attributes "
                       "FROM logs WHERE app_id = :a", {"a": app_id})
    for row in rows:
        attrs = row["attributes"]
        row["attributes"] = orjson.loads(attrs) if isinstance(attrs, str) else attrs
    return rows


def _local_floor(ts_us: int, zone: ZoneInfo, bucket: int) -> int:
    local = datetime.fromtimestamp(ts_us / 1_000_000, tz=zone)
    if bucket >= 86400:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        minutes = (local.hour * 60 + local.minute) // (bucket // 60) * (bucket // 60)
        local = local.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
    return int(local.timestamp())


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def test_stored_aggregates_equal_counts_from_raw_rows(client: Client, owned_app: AppFixture) -> None:
    now = time.time()
    _ingest(client, owned_app.api_key, _generate(2500, now))
    raw = _raw(client, owned_app.app_id)
    assert len(raw) == 2500
    expected: Counter[tuple[int, str, int, int]] = Counter()
    for row in raw:
        for res in (60, 3600, 86400):
            start = row["ts"] // 1_000_000 // res * res
            expected[(res, row["service"], start, LEVEL_NUMBERS[row["level_name"]])] += 1
    stored = client.call(client.db.fetch_all, "SELECT res, service, start_s, level, records FROM health_counts "
                         "WHERE app_id = :a", {"a": owned_app.app_id})
    assert {(r["res"], r["service"], r["start_s"], r["level"]): r["records"] for r in stored} == dict(expected)
    seen = client.call(client.db.fetch_all, "SELECT service, last_seen FROM health_services WHERE app_id = :a",
                       {"a": owned_app.app_id})
    newest: dict[str, int] = defaultdict(int)
    for row in raw:
        newest[row["service"]] = max(newest[row["service"]], min(row["ts"], row["received_at"]))
    assert {r["service"]: r["last_seen"] for r in seen} == dict(newest)


@pytest.mark.parametrize(("tz", "bucket", "resolution"), [
    ("UTC", "1h", 3600), ("UTC", "1d", 86400), ("Asia/Kolkata", "1d", 60), ("Asia/Kolkata", "15m", 60),
    ("America/New_York", "1d", 3600), ("Asia/Tokyo", "6h", 3600),
])
def test_api_series_equal_raw_rows_in_local_buckets(
    client: Client, owned_app: AppFixture, tz: str, bucket: str, resolution: int
) -> None:
    now = time.time()
    _ingest(client, owned_app.api_key, _generate(1500, now, seed=hash(tz) % 100))
    raw = _raw(client, owned_app.app_id)
    zone = ZoneInfo(tz)
    width = {"1h": 3600, "1d": 86400, "15m": 900, "6h": 21600}[bucket]
    params = {"since": "2d", "bucket": bucket, "tz": tz}
    base = f"/api/apps/{owned_app.app_id}/health"
    volume = client.get(f"{base}/volume", params=params).json()
    assert volume["resolution_seconds"] == resolution and volume["tz"] == tz
    lo, hi = volume["points"][0]["start_s"], int(datetime.fromisoformat(volume["until"]).timestamp())
    inside = [r for r in raw if lo <= r["ts"] // 1_000_000 < hi]
    assert len(inside) > 1000
    by_level: Counter[tuple[int, str]] = Counter((_local_floor(r["ts"], zone, width), r["level_name"]) for r in inside)
    got = {(p["start_s"], name): p[name] for p in volume["points"] for name in LEVEL_NUMBERS if p[name]}
    assert got == dict(by_level)
    assert volume["totals"]["total"] == len(inside)

    rates = client.get(f"{base}/error-rate", params=params).json()["series"]
    for series in rates:
        mine = [r for r in inside if r["service"] == series["service"]]
        errors = [r for r in mine if r["level"] >= 40]
        assert (series["records"], series["errors"]) == (len(mine), len(errors))
        per_bucket = Counter(_local_floor(r["ts"], zone, width) for r in errors)
        assert {p["start_s"]: p["errors"] for p in series["points"] if p["errors"]} == dict(per_bucket)
        for p in series["points"]:
            assert p["error_rate"] == (round(p["errors"] / p["records"], 6) if p["records"] else None)

    latency = client.get(f"{base}/latency", params={**params, "by": "route"}).json()["series"]
    timed = [r for r in inside if r["attributes"] and "duration_ms" in r["attributes"]]
    assert {(s["service"], s["route"]) for s in latency} == {(r["service"], request_route(r["attributes"])) for r in timed}
    for s in latency:
        durations = [r["attributes"]["duration_ms"] for r in timed
                     if r["service"] == s["service"] and request_route(r["attributes"]) == s["route"]]
        total = s["total"]
        assert total["requests"] == len(durations) == sum(p["requests"] for p in s["points"])
        assert total["mean_ms"] == round(sum(round(d * 1000) for d in durations) / len(durations) / 1000, 3)
        for q, name in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            truth = _exact(durations, q)
            assert abs(total[name] - truth) <= truth * (RELATIVE_ACCURACY + 5e-4), (name, total[name], truth)


def test_daylight_saving_days_and_old_data(make_client: Any) -> None:
    client = make_client(health_minute_retention_days=5000, health_hour_retention_days=5000)
    user = client.create_user("dst@example.com")
    client.sign_in(user)
    created = client.post("/api/apps", json={"name": "dst"}).json()
    rng = random.Random(3)
    # 2026-03-08 (23 h) and 2026-11-01 (25 h) in New York
    starts = (datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp(), datetime(2026, 10, 31, 12, tzinfo=UTC).timestamp())
    logs = [_record(rng, start + rng.uniform(0, 2.5 * 86400)) for start in starts for _ in range(600)]
    _ingest(client, created["api_key"], logs)
    raw = _raw(client, created["app"]["id"])
    zone = ZoneInfo("America/New_York")
    for since, until, bucket, width in (("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z", "1d", 86400),
                                        ("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", "1h", 3600),
                                        ("2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z", "1d", 86400),
                                        ("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", "1h", 3600)):
        body = client.get(f"/api/apps/{created['app']['id']}/health/volume",
                          params={"since": since, "until": until, "bucket": bucket, "tz": zone.key}).json()
        lo, hi = body["points"][0]["start_s"], int(datetime.fromisoformat(body["until"]).timestamp())
        expected = Counter(_local_floor(r["ts"], zone, width) for r in raw if lo <= r["ts"] // 1_000_000 < hi)
        assert {p["start_s"]: p["total"] for p in body["points"] if p["total"]} == dict(expected)
        if bucket == "1h":
            assert len(body["points"]) in (23, 25)
        else:
            lengths = {b["start_s"] - a["start_s"] for a, b in zip(body["points"], body["points"][1:], strict=False)}
            assert lengths == {82800, 86400} or lengths == {86400, 90000}


def test_top_errors_and_duplicate_batches(client: Client, owned_app: AppFixture) -> None:
    now = time.time()
    logs = [{"timestamp": now - i, "level": "ERROR", "service": "api", "message": f"payment {i} declined: card 4{i}"}
            for i in range(12)]
    logs += [{"timestamp": now - i, "level": "CRITICAL", "service": "api", "message": "database unreachable"}
             for i in range(5)]
    body = {"api_key": owned_app.api_key, "batch_id": "b-1", "logs": logs}
    assert client.post("/ingest", json=body).json()["duplicate"] is False
    assert client.post("/ingest", json=body).json()["duplicate"] is True
    summary = client.get(f"/api/apps/{owned_app.app_id}/health").json()
    top = summary["top_errors"]
    assert [(t["fingerprint"], t["count"]) for t in top] == [
        (fingerprint("payment 1 declined: card 41"), 12), ("database unreachable", 5)]
    assert top[0]["fingerprint"] == "payment # declined: card #"
    assert summary["services"][0]["records"] == 17 and summary["services"][0]["top_errors"] == top


def _summary(client: Client, app_id: int) -> dict[str, dict[str, Any]]:
    body = client.get(f"/api/apps/{app_id}/health").json()
    return {"": body, **{s["service"]: s for s in body["services"]}}


def test_status_rule_transitions(client: Client, owned_app: AppFixture) -> None:
    def send(service: str, n: int, level: str = "INFO", ago: float = 0.0, duration: float | None = None) -> None:
        now = time.time()
        logs = [{"timestamp": now - ago, "level": level, "service": service, "message": f"{level} {i}",
                 **({"attributes": {"duration_ms": duration, "route": "/r", "method": "GET"}} if duration else {})}
                for i in range(n)]
        _ingest(client, owned_app.api_key, logs)

    send("svc", 20)
    assert _summary(client, owned_app.app_id)["svc"]["status"] == "healthy"
    send("svc", 2, "ERROR")  # 2 / 22 = 9 %
    s = _summary(client, owned_app.app_id)["svc"]
    assert (s["status"], s["error_rate"]) == ("degraded", round(2 / 22, 6)) and "error rate" in s["reasons"][0]
    send("svc", 10, "CRITICAL")  # 12 / 32 = 37.5 %
    assert _summary(client, owned_app.app_id)["svc"]["status"] == "failing"
    send("web", 20, duration=40.0)
    assert _summary(client, owned_app.app_id)["web"]["status"] == "healthy"
    send("web", 20, duration=2000.0)  # p95 about 2 s
    s = _summary(client, owned_app.app_id)["web"]
    assert s["status"] == "degraded" and s["p95_ms"] >= 1000 and "p95" in s["reasons"][0]
    send("web", 60, duration=9000.0)
    assert _summary(client, owned_app.app_id)["web"]["status"] == "failing"
    send("tiny", 3)
    assert _summary(client, owned_app.app_id)["tiny"]["status"] == "healthy"
    send("tiny", 1, "ERROR")  # below HEALTH_MIN_RECORDS, any error
    assert _summary(client, owned_app.app_id)["tiny"]["status"] == "degraded"
    send("cron", 5, ago=20 * 60)  # nothing for 20 minutes
    s = _summary(client, owned_app.app_id)
    assert s["cron"]["status"] == "silent" and s["cron"]["records"] == 0 and s["cron"]["previous_records"] == 5
    assert s[""]["status"] == "failing" and [x["service"] for x in s[""]["services"]][:2] == ["svc", "web"]
    send("svc", 30, "ERROR", ago=18 * 60)  # the previous window was worse
    s = _summary(client, owned_app.app_id)["svc"]
    assert s["previous_error_rate"] == 1.0 and s["trend"] == "down"


def test_thresholds_are_settings(make_client: Any) -> None:
    client = make_client(health_degraded_error_rate=0.5, health_failing_error_rate=0.9, health_min_records=2)
    client.sign_in(client.create_user("t@example.com"))
    created = client.post("/api/apps", json={"name": "t"}).json()
    now = time.time()
    logs = [{"timestamp": now, "level": "ERROR" if i < 3 else "INFO", "service": "s", "message": "m"} for i in range(10)]
    _ingest(client, created["api_key"], logs)
    assert _summary(client, created["app"]["id"])["s"]["status"] == "healthy"  # 30 % < 50 %


@pytest.mark.parametrize(("path", "params", "field"), [
    ("volume", {"since": "yesterday"}, "since"),
    ("volume", {"since": "1h", "until": "2h"}, "since"),
    ("volume", {"bucket": "7m"}, "bucket"),
    ("volume", {"bucket": "often"}, "bucket"),
    ("volume", {"since": "2d", "bucket": "1m"}, "bucket"),
    ("volume", {"since": "30d", "bucket": "5m"}, "bucket"),
    ("error-rate", {"tz": "Mars/Olympus"}, "tz"),
    ("latency", {"by": "host"}, "by"),
    ("", {"window": "0m"}, "window"),
    ("", {"window": "3d"}, "window"),
])
def test_bad_parameters_are_400_naming_them(client: Client, owned_app: AppFixture, path: str,
                                            params: dict[str, str], field: str) -> None:
    r = client.get(f"/api/apps/{owned_app.app_id}/health" + (f"/{path}" if path else ""), params=params)
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_aggregation_off_stores_logs_only(make_client: Any) -> None:
    client = make_client(health_aggregation=False)
    client.sign_in(client.create_user("off@example.com"))
    created = client.post("/api/apps", json={"name": "off"}).json()
    _ingest(client, created["api_key"], _generate(50, time.time()))
    assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM health_counts") == 0
    body = client.get(f"/api/apps/{created['app']['id']}/health/volume").json()
    assert body["totals"]["total"] == 0 and body["services"] == []


def test_retention_and_app_deletion(client: Client, owned_app: AppFixture) -> None:
    _ingest(client, owned_app.api_key, _generate(200, time.time()))
    settings = client.app_state["settings"]
    later = int(time.time()) + 30 * 86400  # minute rows (7 days) go, hour (90) and day rows stay
    client.call(prune, client.db, settings, later)
    left = client.call(client.db.fetch_all, "SELECT res, COUNT(*) AS n FROM health_latency GROUP BY res")
    assert {r["res"] for r in left} == {3600, 86400}
    assert client.call(client.db.fetch_val, "SELECT COUNT(*) FROM health_counts WHERE res = 60") == 0
    assert client.delete(f"/api/apps/{owned_app.app_id}").status_code == 204
    for table in HEALTH_TABLES.split(", "):
        assert client.call(client.db.fetch_val, f"SELECT COUNT(*) FROM {table}") == 0, table


def test_two_writers_on_one_database_keep_latency_exact(make_client: Any) -> None:
    """Each aggregator keeps its own copy of the latency rows; the other's passes must invalidate it."""
    first, second = make_client(), make_client()
    first.sign_in(first.create_user("w@example.com"))
    created = first.post("/api/apps", json={"name": "two-writers"}).json()
    rng = random.Random(11)
    now = time.time()
    for i in range(6):
        logs = [_record(rng, now - rng.uniform(0, 90)) for _ in range(80)]
        _ingest(first if i % 2 else second, created["api_key"], logs)
    raw = _raw(first, created["app"]["id"])
    timed = [r for r in raw if r["attributes"] and "duration_ms" in r["attributes"]]
    stored = first.call(first.db.fetch_all, "SELECT res, route, SUM(requests) AS n, SUM(total_us) AS t "
                        "FROM health_latency GROUP BY res, route")
    for res in (60, 3600, 86400):
        expected = Counter(request_route(r["attributes"]) for r in timed)
        expected["*"] = len(timed)
        assert {r["route"]: r["n"] for r in stored if r["res"] == res} == dict(expected)
        total = sum(round(r["attributes"]["duration_ms"] * 1000) for r in timed)
        assert sum(r["t"] for r in stored if r["res"] == res and r["route"] == "*") == total


def test_latency_histograms_appended_per_commit_stay_exact_and_bounded(client: Client, owned_app: AppFixture) -> None:
    """Aggregator passes append their own bins to the stored histogram and rewrite it every
    APPEND_MAX appends: after many small passes the stored bins equal the raw durations' bins
    and no stored value holds more than APPEND_MAX + 1 arrays."""
    rng = random.Random(5)
    now = time.time()
    for _ in range(3 * LatencyCache.APPEND_MAX + 5):  # one pass per request (_ingest catches up)
        logs = [{"timestamp": now - rng.uniform(0, 5), "level": "INFO", "service": "api", "message": "GET /x",
                 "attributes": {"method": "GET", "route": "/x", "duration_ms": round(rng.lognormvariate(3, 1), 3)}}
                for _ in range(3)]
        _ingest(client, owned_app.api_key, logs)
    durations = [r["attributes"]["duration_ms"] for r in _raw(client, owned_app.app_id)]
    expected: Counter[int] = Counter(bin_of(d) for d in durations)
    stored = client.call(client.db.fetch_all, "SELECT res, route, requests, bins FROM health_latency WHERE app_id = :a",
                         {"a": owned_app.app_id})
    by_res: dict[tuple[int, str], Counter[int]] = defaultdict(Counter)
    for row in stored:
        assert appended(row["bins"]) <= LatencyCache.APPEND_MAX
        by_res[(row["res"], row["route"])].update(decode(row["bins"]))
    assert {k[1] for k in by_res} == {"GET /x", "*"}
    for counts in by_res.values():
        assert counts == expected
    assert max(appended(row["bins"]) for row in stored) > 0  # appends did happen

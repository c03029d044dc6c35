from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest

from server.ingest_validate import Limits, RecordError, replace_nul, validate_record
from tests.conftest import AppFixture, Client


def _log(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"timestamp": time.time(), "level": "INFO", "message": f"line {i}", **fields}


def _stored(client: Client, app: AppFixture, **params: Any) -> list[dict[str, Any]]:
    return client.get(f"/api/apps/{app.app_id}/logs", params={"limit": 1000, **params}).json()["logs"]


def test_valid_batch_is_committed_with_every_field(client: Client, owned_app: AppFixture) -> None:
    record = {
        "timestamp": "2026-12-04T10:00:00.250Z", "level": "warn", "message": "disk almost full",
        "service": "worker", "logger": "app.disk", "environment": "staging", "release": "1.2.3", "host": "web-1",
        "process_id": 42, "thread_name": "MainThread", "attributes": {"free_mb": 12, "mount": {"path": "/"}},
        "exception": {"type": "OSError", "value": "nope", "traceback": "Traceback (most recent call last):\n  boom"},
        "trace_id": "abc123", "request_id": "req-9",
    }
    r = client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [record]})
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "rejected": 0, "batch_id": None, "duplicate": False, "errors": []}
    [log] = _stored(client, owned_app)
    assert log["timestamp"] == "2026-12-04T10:00:00.250000Z"
    assert log["level"] == "WARNING" and log["level_number"] == 30
    assert log["attributes"] == {"free_mb": 12, "mount": {"path": "/"}}
    assert log["exception"]["type"] == "OSError" and "boom" in log["exception"]["traceback"]
    for field in ("service", "logger", "environment", "release", "host", "process_id", "thread_name", "trace_id", "request_id"):
        assert log[field] == record[field]


def test_environment_defaults_to_the_keys_label(client: Client, owned_app: AppFixture) -> None:
    client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [_log()]})
    assert _stored(client, owned_app)[0]["environment"] == "prod"


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "body"])
def test_key_in_header_or_body(client: Client, owned_app: AppFixture, how: str) -> None:
    headers = {"bearer": {"Authorization": f"Bearer {owned_app.api_key}"}, "x-api-key": {"X-API-Key": owned_app.api_key}}
    body: dict[str, Any] = {"logs": [_log()]}
    if how == "body":
        body["api_key"] = owned_app.api_key
    r = client.post("/ingest", json=body, headers=headers.get(how, {}))
    assert r.status_code == 202 and r.json()["accepted"] == 1


def test_gzip_body(client: Client, owned_app: AppFixture) -> None:
    body = gzip.compress(orjson.dumps({"api_key": owned_app.api_key, "logs": [_log(i) for i in range(50)]}))
    r = client.post("/ingest", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["accepted"] == 50


def test_attribute_depth_counts_nesting_not_brackets_in_strings(client: Client, owned_app: AppFixture) -> None:
    logs = [
        _log(0, attributes={"text": "{[{[{[{[{[ not nested ]}]}]}]}]", "list": ["[[[[", "{{{{"]}),
        _log(1, attributes={"a": {"b": {"c": {"d": [1]}}}}),  # 5 levels: the limit
        _log(2, attributes={"a": {"b": {"c": {"d": [[1]]}}}}),  # 6
    ]
    r = client.post("/ingest", json={"api_key": owned_app.api_key, "logs": logs})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(2, "attributes")]


def test_per_record_errors_name_index_and_field_and_keep_the_valid_ones(client: Client, owned_app: AppFixture) -> None:
    logs = [
        _log(0),
        {"level": "INFO", "message": "no time"},
        _log(2, level="LOUD"),
        _log(3, message=None),
        _log(4, attributes=[1, 2]),
        _log(5, attributes={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}),
        _log(6, message="x" * 40000),
        "not an object",
        _log(8, timestamp="yesterday"),
        _log(9, service=7),
        _log(10),
        _log(11, timestamp=1.7976931348623157e308),  # x 1e6 is infinite: was a 500 (found by schemathesis)
    ]
    r = client.post("/ingest", json={"api_key": owned_app.api_key, "logs": logs})
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 10
    errors = {e["index"]: e for e in body["errors"]}
    assert errors[1]["field"] == "timestamp" and "required" in errors[1]["message"]
    assert errors[2]["field"] == "level" and "LOUD" in errors[2]["message"]
    assert errors[3]["field"] == "message"
    assert errors[4]["field"] == "attributes" and "object" in errors[4]["message"]
    assert errors[5]["field"] == "attributes" and "INGEST_MAX_ATTRIBUTE_DEPTH" in errors[5]["message"]
    assert errors[6]["field"] == "message" and "32768" in errors[6]["message"]
    assert errors[8]["field"] == "timestamp" and "ISO 8601" in errors[8]["message"]
    assert errors[9]["field"] == "service"
    assert errors[11] == {"index": 11, "field": "timestamp", "message": "timestamp is more than 24 hours in the future"}
    assert sorted(log["message"] for log in _stored(client, owned_app)) == ["line 0", "line 10"]


@pytest.mark.parametrize(
    "body, code",
    [(b"{not json", "invalid_json"), (b"[1, 2]", "invalid_body")],
)
def test_unreadable_body_is_400(client: Client, owned_app: AppFixture, body: bytes, code: str) -> None:
    r = client.post("/ingest", content=body, headers={"Authorization": f"Bearer {owned_app.api_key}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == code


def test_logs_must_be_a_list(client: Client, owned_app: AppFixture) -> None:
    r = client.post("/ingest", json={"api_key": owned_app.api_key, "logs": {"a": 1}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "logs"


def test_bad_gzip_is_400(client: Client, owned_app: AppFixture) -> None:
    r = client.post("/ingest", content=b"not gzip", headers={"Content-Encoding": "gzip", "X-API-Key": owned_app.api_key})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_gzip"


def test_unknown_and_revoked_keys_get_the_same_401(client: Client, owned_app: AppFixture) -> None:
    unknown = client.post("/ingest", json={"api_key": "sk_prod_" + "0" * 40, "logs": [_log()]})
    missing = client.post("/ingest", json={"logs": [_log()]})
    malformed = client.post("/ingest", json={"api_key": "hello", "logs": [_log()]})
    [key] = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]
    client.delete(f"/api/apps/{owned_app.app_id}/keys/{key['id']}")
    revoked = client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [_log()]})
    for r in (unknown, missing, malformed, revoked):
        assert r.status_code == 401
        assert r.json() == unknown.json()
    assert _stored(client, owned_app) == []


def test_limits_answer_413_naming_the_limit(make_client: Any) -> None:
    client = make_client(ingest_max_records=5, ingest_max_body_bytes=2000)
    user = client.create_user("bob@example.com")
    client.sign_in(user)
    key = client.post("/api/apps", json={"name": "a"}).json()["api_key"]
    too_many = client.post("/ingest", json={"api_key": key, "logs": [_log(i) for i in range(6)]})
    assert too_many.status_code == 413 and "INGEST_MAX_RECORDS" in too_many.json()["error"]["message"]
    too_big = client.post("/ingest", json={"api_key": key, "logs": [_log(0, message="y" * 3000)]})
    assert too_big.status_code == 413 and "INGEST_MAX_BODY_BYTES" in too_big.json()["error"]["message"]
    bomb = gzip.compress(orjson.dumps({"api_key": key, "logs": [_log(0, message="z" * 1500)] * 2}))
    assert len(bomb) < 2000
    r = client.post("/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["error"]["message"]


def test_rate_limit_per_key_answers_429_with_retry_after(make_client: Any) -> None:
    client = make_client(ingest_rate_limit=10)
    client.sign_in(client.create_user("carol@example.com"))
    key = client.post("/api/apps", json={"name": "a"}).json()["api_key"]
    first = client.post("/ingest", json={"api_key": key, "logs": [_log(i) for i in range(20)]})
    assert first.status_code == 202
    second = client.post("/ingest", json={"api_key": key, "logs": [_log(i) for i in range(5)]})
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert second.json()["error"]["code"] == "rate_limited"


def test_retried_batch_id_is_not_stored_twice(client: Client, owned_app: AppFixture) -> None:
    body = {"api_key": owned_app.api_key, "batch_id": "batch-1", "logs": [_log(i) for i in range(3)] + [{"bad": 1}]}
    first = client.post("/ingest", json=body).json()
    again = client.post("/ingest", json=body).json()
    assert first["accepted"] == 3 and not first["duplicate"]
    assert again == {"accepted": 3, "rejected": 1, "batch_id": "batch-1", "duplicate": True, "errors": []}
    assert len(_stored(client, owned_app)) == 3


def test_client_report_is_stored(client: Client, owned_app: AppFixture) -> None:
    report = {"dropped": {"queue_full": 3}, "retried": 2}
    client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [_log()], "client_report": report})
    rows = client.call(client.db.fetch_all, "SELECT report FROM sdk_reports WHERE app_id = :a", {"a": owned_app.app_id})
    stored = rows[0]["report"]
    assert (orjson.loads(stored) if isinstance(stored, str) else stored) == report


def test_key_last_used_is_recorded(client: Client, owned_app: AppFixture) -> None:
    client.post("/ingest", json={"api_key": owned_app.api_key, "logs": [_log()]})
    [key] = client.get(f"/api/apps/{owned_app.app_id}/keys").json()["keys"]
    assert key["last_used_at"] is not None


def test_unsupported_content_encoding(client: Client, owned_app: AppFixture) -> None:
    r = client.post("/ingest", content=b"{}", headers={"Content-Encoding": "br", "X-API-Key": owned_app.api_key})
    assert r.status_code == 415


def test_nul_characters_are_stored_as_replacement_characters(client: Client, owned_app: AppFixture) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL; such a record once failed its whole commit
    there. Every NUL (message, fields, attribute keys and values, traceback, batch id, client
    report) becomes U+FFFD, alike on both databases, and the record is kept."""
    record = _log(message="a\x00b", logger="app\x00x", attributes={"k\x00": ["v\x00", {"deep\x00": "\x00"}]},
                  exception={"type": "E\x00", "value": "", "traceback": "tb\x00"})
    body = {"api_key": owned_app.api_key, "batch_id": "b\x00", "logs": [record, _log(1)],
            "client_report": {"note\x00": "x\x00"}}
    r = client.post("/ingest", content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2 and r.json()["batch_id"] == "b\ufffd"
    log = _stored(client, owned_app, q="a")[0]
    assert (log["message"], log["logger"]) == ("a\ufffdb", "app\ufffdx")
    assert log["attributes"] == {"k\ufffd": ["v\ufffd", {"deep\ufffd": "\ufffd"}]}
    assert log["exception"]["type"] == "E\ufffd" and log["exception"]["traceback"] == "tb\ufffd"
    rows = client.call(client.db.fetch_all, "SELECT report FROM sdk_reports WHERE app_id = :a", {"a": owned_app.app_id})
    stored = rows[0]["report"]
    assert (orjson.loads(stored) if isinstance(stored, str) else stored) == {"note\ufffd": "x\ufffd"}


def test_replace_nul_walks_any_depth() -> None:
    deep: Any = "\x00"
    for i in range(5000):  # deeper than Python's recursion limit
        deep = {"k": deep} if i % 2 else [deep]
    out = replace_nul(deep)
    for i in range(5000):
        out = out["k"] if (4999 - i) % 2 else out[0]
    assert out == "\ufffd"
    assert replace_nul("x\x00") == "x\ufffd" and replace_nul(5) == 5


def test_timestamps_and_levels_off_the_fast_path_get_the_full_checks() -> None:
    now = int(time.time() * 1_000_000)
    limits = Limits(32768, 16384, 5, 65536)

    def row(**fields: Any) -> tuple[Any, ...]:
        return validate_record({"timestamp": 1.5, "level": "INFO", "message": "m", **fields}, 1, "prod", now, limits)

    assert row()[2] == 1_500_000 and row(timestamp=0.0)[2] == 0 and row(timestamp=-0.0)[2] == 0
    assert row(timestamp=1)[2] == 1_000_000 and row(timestamp="1970-01-01T00:00:02Z")[2] == 2_000_000
    assert row(timestamp=now / 1e6 + 3600)[2] == round((now / 1e6 + 3600) * 1e6)
    for bad, reason in ((now / 1e6 + 25 * 3600, "24 hours in the future"), (1e13, "24 hours in the future"),
                        (-1.0, "non-negative"), (float("nan"), "finite"), (float("inf"), "finite"), (True, "boolean")):
        with pytest.raises(RecordError, match=reason):
            row(timestamp=bad)
    assert row(level="info")[4:6] == (20, "INFO") and row(level="Warn")[4:6] == (30, "WARNING")
    assert row(level=25)[4:6] == (25, "INFO") and row(level="FATAL")[4:6] == (50, "CRITICAL")
    for bad in ("LOUD", ["INFO"], None, 51):
        with pytest.raises(RecordError):
            row(level=bad)


def test_a_cached_key_revoked_by_another_process_gets_401_on_every_path(client: Client, owned_app: AppFixture) -> None:
    """This process keeps keys it found (server.ingest_keys); another process revoking one (here
    the same UPDATE, without this process knowing) must still make its next request 401, whatever
    that request is, and store nothing of it, as if nothing were cached."""
    keys = client.app_state["ingest_keys"]

    def cached_then_revoked_elsewhere() -> str:
        key = client.post(f"/api/apps/{owned_app.app_id}/keys", json={"environment": "dev"}).json()["api_key"]
        assert client.post("/ingest", json={"api_key": key, "logs": [_log(0, message="before")]}).status_code == 202
        cached = len(keys)
        client.call(client.db.execute, "UPDATE api_keys SET revoked_at = 1 WHERE revoked_at IS NULL AND environment = 'dev'")
        assert len(keys) == cached  # nothing told this process
        return key

    batch = {"logs": [_log(1, message="after")], "batch_id": "b-1"}
    requests = [
        {"logs": [_log(1, message="after")]},  # checked by the commit
        batch,  # the batch id must not be recorded either
        {"logs": []},  # nothing to commit: checked before the 202
        {"logs": [{"level": "INFO"}]},  # every record rejected, no commit
        {"logs": "not a list"},  # would be 400
        {"logs": [_log()], "batch_id": ""},  # would be 400
    ]
    for body in requests:
        key = cached_then_revoked_elsewhere()
        r = client.post("/ingest", json={"api_key": key, **body})
        assert r.status_code == 401, (body, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert [log["message"] for log in _stored(client, owned_app)] == ["before"] * len(requests)
    # The refused batch id was not recorded: sent with an active key, it is stored, not a duplicate.
    r = client.post("/ingest", json={"api_key": owned_app.api_key, **batch})
    assert r.status_code == 202 and r.json()["duplicate"] is False and r.json()["accepted"] == 1

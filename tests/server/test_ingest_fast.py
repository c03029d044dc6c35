"""The fast path of POST /ingest (server.ingest_fast) gives the general path's rows, or steps aside.

Generated bodies mix valid and invalid values of every field; whenever the fast path takes a
body, the general path (orjson, then validate_record) must accept every record of it and make
the same rows and request fields. The fast path's rows are made in C when built
(server._speedups.log_rows) and in Python otherwise: both are checked (`rows_in`).
"""

from __future__ import annotations

import gc
import json
import random
import time
from typing import Any

import orjson
import pytest

from server import ingest_fast, native
from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits, RecordError, replace_nul, validate_record
from tests.conftest import AppFixture, Client

LIMITS = Limits(max_message_bytes=200, max_attributes_bytes=120, max_attribute_depth=3, max_traceback_bytes=300)
NOW_US = int(time.time() * 1_000_000)
_S = 1e-6


def _general(body: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]], list[tuple[int, str, int, int]]] | None:
    """(rows, errors as (field, message), request fields), or None when the body is refused whole."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("logs"), list):
        return None
    payload = replace_nul(payload)
    rows, errors, requests = [], [], []
    for record in payload["logs"]:
        try:
            rows.append(validate_record(record, 7, "prod", NOW_US, LIMITS, requests, len(rows)))
        except RecordError as exc:
            errors.append((exc.field, exc.message))
    return rows, errors, requests


def _json(payload: Any) -> bytes:
    """JSON as a client may send it (the stdlib writes integers of any size; orjson stops at 64 bits)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


_VALUES: dict[str, list[Any]] = {
    "timestamp": [NOW_US * _S, int(NOW_US * _S), 0, 0.0, -0.0, -1, NOW_US * _S + 2 * 86400, "2026-12-04T10:00:00Z",
                  0.5e-6, 1.5e-6, 2.5e-6, 1_700_000_000.0000005, NOW_US * _S + 86400 - 1e-6, NOW_US * _S + 86400 + 1e-3,
                  True, None, 1e300, 1.7976931348623157e308, -1.7976931348623157e308, 2**64, "soon"],
    "level": ["INFO", "ERROR", "WARN", "FATAL", "info", "Warning", 30, 0, 50, 51, -1, True, None, "LOUD", 2.5],
    "message": ["ok", "", "é" * 50, "é" * 101, "x" * 200, "x" * 201, "😀" * 50, "😀" * 51, 5, None, ["a"]],
    "service": ["api", "", "x" * 256, "x" * 257, "é" * 256, "😀" * 256, "😀" * 257, 3, None],
    "host": ["web-1", 1.5, None, False],
    "environment": ["staging", "", None, {}],
    "process_id": [1, 0, -5, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**70, 1.0, True, "1", None],
    "attributes": [{"a": 1}, {}, {"a": {"b": {"c": 1}}}, {"a": {"b": {"c": {"d": 1}}}}, {"s": "x" * 200},
                   {"big": 2**63}, {"huge": 2**70}, {"f": 1.5, "n": None, "l": [1, [2]]}, [], "x", None,
                   {"duration_ms": 12.5, "route": "GET /a", "status": 200}, {"duration_ms": "slow"}],
    "exception": [{"type": "E", "value": "v", "traceback": "tb"}, {"type": None, "value": None, "traceback": None},
                  {"type": "E"}, "Traceback ...", {"type": 5, "value": "v", "traceback": "t"},
                  {"frames": [{"filename": "a.py", "lineno": 3, "function": "f"}]}, {"traceback": 5},
                  {"type": "E", "value": "v", "traceback": "t" * 400}, {"type": "E", "extra": 1}, 7, None],
    "trace_id": ["abc", "x" * 257, None, 1],
}


def _record(rng: random.Random) -> Any:
    if rng.random() < 0.03:
        return rng.choice(["not an object", 5, None, []])
    record: dict[str, Any] = {"timestamp": NOW_US * _S, "level": "INFO", "message": "hello"}
    for name, values in _VALUES.items():
        roll = rng.random()
        if roll < 0.15:
            record.pop(name, None)
        elif roll < 0.5:
            record[name] = rng.choice(values)
    if rng.random() < 0.05:
        record["unknown_field"] = rng.choice([1, "x", None])
    return record


def _body(rng: random.Random) -> bytes:
    payload: dict[str, Any] = {"logs": [_record(rng) for _ in range(rng.randrange(0, 4))]}
    extra = rng.random()
    if extra < 0.1:
        payload["batch_id"] = rng.choice(["b1", "", "x" * 128, "x" * 129, "é" * 128, "😀" * 128, "😀" * 129, 5])
    elif extra < 0.15:
        payload["client_report"] = rng.choice([{"dropped": 1}, [], "x"])
    elif extra < 0.2:
        payload["api_key"] = rng.choice(["sk_x", 5, None])
    text = _json(payload)
    if rng.random() < 0.03:
        text = text.replace(b'"hello"', b'"he\\u0000llo"')
    return text


@pytest.fixture(params=["built", "Python"])
def rows_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fast path's rows made in C (when built) or in Python."""
    if request.param == "built" and not native.built:
        pytest.skip("server._speedups is not built")
    if request.param == "Python":
        monkeypatch.setattr(ingest_fast, "log_rows", None)
    return str(request.param)


@pytest.mark.usefixtures("rows_in")
def test_whenever_the_fast_path_takes_a_body_it_makes_the_general_paths_rows() -> None:
    rng = random.Random(20261205)
    taken = fell_back = stepped_aside = 0
    for _ in range(20_000):
        body = _body(rng)
        general = _general(body)
        fast = fast_payload(body)
        if fast is None:
            stepped_aside += 1
            continue
        assert general is not None, body
        general_payload = orjson.loads(body)
        assert (fast.api_key, fast.batch_id, fast.client_report) == tuple(
            general_payload.get(k) for k in ("api_key", "batch_id", "client_report")), body
        requests: list[tuple[int, str, int, int]] = []
        rows = fast_rows(fast.logs, 7, "prod", NOW_US, LIMITS, requests)
        if rows is None:
            fell_back += 1
            continue
        taken += 1
        assert general == (rows, [], requests), body
    # Every kind of outcome happened (the generator reaches both paths)
    assert taken > 2_000 and fell_back > 100 and stepped_aside > 2_000, (taken, fell_back, stepped_aside)


@pytest.mark.parametrize("body", [
    {"logs": [{"timestamp": NOW_US * _S, "level": "INFO", "message": "m", "process_id": 2**64 - 1}]},
    {"logs": [{"timestamp": NOW_US * _S, "level": "INFO", "message": "m", "attributes": {"n": 2**70}}]},
    {"logs": [{"timestamp": NOW_US * _S, "level": "INFO", "message": "m", "exception": {"frames": []}}]},
    {"logs": [{"timestamp": NOW_US * _S, "level": "INFO", "message": "m"},
              {"timestamp": NOW_US * _S + 86400 + 1e-3, "level": "INFO", "message": "too far ahead"}]},
])
@pytest.mark.usefixtures("rows_in")
def test_what_the_fast_path_leaves_goes_the_general_way(body: dict[str, Any]) -> None:
    fast = fast_payload(_json(body))
    assert fast is None or fast_rows(fast.logs, 7, "prod", NOW_US, LIMITS, []) is None


def test_a_process_id_past_64_bits_is_refused_by_name_and_the_other_logs_are_stored(
    client: Client, owned_app: AppFixture,
) -> None:
    # orjson reads integers up to 2**64 - 1: such a process id failed PostgreSQL's BIGINT column,
    # and with it the whole commit, every other request in it too.
    good = {"timestamp": time.time(), "level": "INFO", "message": "kept", "process_id": 2**63 - 1}
    bad = {**good, "message": "refused", "process_id": 2**64 - 1}
    r = client.post("/ingest", content=orjson.dumps({"api_key": owned_app.api_key, "logs": [good, bad]}),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    assert r.json()["errors"] == [
        {"index": 1, "field": "process_id", "message": "process_id must be an integer of at most 64 bits"}]
    logs = client.get(f"/api/apps/{owned_app.app_id}/logs").json()["logs"]
    assert [(log["message"], log["process_id"]) for log in logs] == [("kept", 2**63 - 1)]


@pytest.mark.usefixtures("rows_in")
def test_other_shippers_timestamps_and_levels_take_the_fast_path() -> None:
    logs = [{"timestamp": "2026-12-04T10:00:00.250+01:00", "level": "info", "message": "iso"},
            {"timestamp": 1796378400, "level": 35, "message": "integer seconds, numeric level"},
            {"timestamp": "2026-12-04 10:00:00", "level": "warn", "message": "no offset: UTC"}]
    body = _json({"logs": logs})
    fast = fast_payload(body)
    assert fast is not None
    rows = fast_rows(fast.logs, 7, "prod", NOW_US, LIMITS, [])
    assert rows is not None and _general(body) == (rows, [], [])
    assert [(row[2], row[4], row[5]) for row in rows] == [
        (1796374800250000, 20, "INFO"), (1796378400000000, 35, "WARNING"), (1796378400000000, 30, "WARNING")]


def test_nul_escaped_or_raw_never_takes_the_fast_path() -> None:
    log = {"timestamp": NOW_US * _S, "level": "INFO", "message": "a\x00b"}
    assert fast_payload(_json({"logs": [log]})) is None  # \u0000: replaced on the general path
    assert fast_payload(_json({"logs": [log]}).replace(b"\\u0000", b"\x00")) is None  # not JSON: 400 there


def test_the_parsed_body_is_not_tracked_by_the_garbage_collector() -> None:
    body = {"logs": [{"timestamp": time.time(), "level": "INFO", "message": "m", "attributes": {"a": 1},
                      "exception": {"type": "E", "value": "v", "traceback": "t"}}]}
    payload = fast_payload(orjson.dumps(body))
    assert payload is not None
    log = payload.logs[0]
    assert not gc.is_tracked(payload) and not gc.is_tracked(log) and not gc.is_tracked(log.exception)

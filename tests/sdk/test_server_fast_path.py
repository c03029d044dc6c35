"""What the SDK sends takes the server's fast ingest path (server.ingest_fast), with the same rows
as the general one: plain logs, extra attributes, request ids, exceptions, non-ASCII text."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import sentry_logger

from server.ingest_fast import fast_payload, fast_rows
from server.ingest_validate import Limits, validate_record
from server.settings import load_settings

from .conftest import Sink

log = logging.getLogger("app.fast_path")


def test_sdk_batches_take_the_fast_path_with_the_general_paths_rows(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()
    log.info("plain %s", "line")
    log.warning("naïve café ☕ 😀", extra={"user": "ü", "n": 3, "ratio": 0.5, "tags": ["a", "b"], "nested": {"k": None}})
    log.info("request", extra={"request_id": "req-1", "duration_ms": 12.5, "route": "GET /x", "status": 200})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    log.critical("x" * 100_000)  # clipped by the SDK to the server's message limit
    assert sentry_logger.flush(5)
    s = load_settings({}, env_file=None)
    limits = Limits(s.ingest_max_message_bytes, s.ingest_max_attributes_bytes, s.ingest_max_attribute_depth,
                    s.ingest_max_traceback_bytes)
    now = int(time.time() * 1_000_000)
    bodies = [r.body for r in sink.requests if r.status == 202]
    assert sum(len(orjson.loads(b)["logs"]) for b in bodies) == 5
    for body in bodies:
        fast = fast_payload(body)
        assert fast is not None, body
        requests: list[tuple[int, str, int, int]] = []
        rows = fast_rows(fast.logs, 1, "prod", now, limits, requests)
        assert rows is not None, body
        general: list[tuple[int, str, int, int]] = []
        assert rows == [validate_record(r, 1, "prod", now, limits, general, i) for i, r in enumerate(orjson.loads(body)["logs"])]
        assert requests == general

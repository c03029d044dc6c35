"""What the handler captures, and how it keeps each record inside the server's limits."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import sentry_logger
from sentry_logger.buffer import SMALL_ENTRY_BYTES, Buffer
from sentry_logger.record import Limits

from .conftest import Sink

log = logging.getLogger("app.handler_tests")
LIMITS = Limits()


def one(sink: Sink) -> dict[str, Any]:
    assert sentry_logger.flush(5)
    (record,) = sink.logs
    return record


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_extra_values_become_json_safe_attributes(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()

    class Custom:
        def __str__(self) -> str:
            return "custom!"

    deep: dict[str, Any] = {"l2": {"l3": {"l4": {"l5": {"l6": 1}}}}}
    log.info("x", extra={"obj": Custom(), "nan": float("nan"), "big": 2**70, "tags": ("a", "b"), "deep": deep,
                         "none": None, "flag": True})
    attributes = one(sink)["attributes"]
    assert attributes["obj"] == "custom!" and attributes["nan"] == "nan" and attributes["big"] == str(2**70)
    assert attributes["tags"] == ["a", "b"] and attributes["none"] is None and attributes["flag"] is True
    # the server allows 5 levels counting the attributes object itself
    assert attributes["deep"]["l2"]["l3"]["l4"] == {"l5": "{'l6': 1}"}


def test_extra_is_snapshotted_at_the_logging_call(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(flush_interval=60)
    items = [1]
    log.info("snapshot", extra={"items": items})
    items.append(2)
    assert one(sink)["attributes"] == {"items": [1]}


def test_oversized_fields_are_clipped_to_the_server_limits(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()
    try:
        raise ValueError("x" * 5000)
    except ValueError:
        tb_padding = {"blob": "y" * 50_000, "order_id": 7, "more": ["z" * 9000] * 5}
        log.exception("é" * 40_000, extra=tb_padding)
    record = one(sink)
    assert len(record["message"].encode()) <= LIMITS.message_bytes
    assert record["message"].startswith("é" * 100) and record["message"].endswith("[truncated]")
    assert json_bytes(record["attributes"]) <= LIMITS.attributes_bytes
    assert record["attributes"]["order_id"] == 7  # small fields survive next to a big one
    assert json_bytes(record["exception"]) <= LIMITS.exception_bytes


def test_huge_traceback_keeps_its_end(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()

    def chain(n: int) -> None:  # 100 chained exceptions of 1 kB each: a ~120 kB traceback
        if n == 0:
            raise KeyError("k" * 1000)
        try:
            chain(n - 1)
        except Exception as exc:
            raise RuntimeError("bottom of the stack" if n == 100 else "r" * 1000) from exc

    try:
        chain(100)
    except RuntimeError:
        log.exception("deep")
    exception = one(sink)["exception"]
    assert json_bytes(exception) <= LIMITS.exception_bytes
    assert exception["traceback"].startswith("\N{HORIZONTAL ELLIPSIS}(truncated)")
    assert exception["traceback"].rstrip().endswith("RuntimeError: bottom of the stack")


def test_levels_stack_info_and_bad_format_strings(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    client = init_sdk(level=5)
    logging.addLevelName(25, "NOTICE")
    log.log(25, "custom level")
    log.log(5, "below debug")
    log.info("stack", stack_info=True)
    alone = logging.getLogger("app.only_sdk")  # pytest's own capture handler would raise on a bad format
    alone.propagate = False
    alone.addHandler(client.handler)
    alone.info("bad %d format", "not a number")
    alone.removeHandler(client.handler)
    assert sentry_logger.flush(5)
    notice, low, stack, bad = sink.logs
    assert notice["level"] == 25 and low["level"] == 5
    assert stack["attributes"]["stack_info"].startswith("Stack (most recent call last):")
    assert bad["message"].startswith("bad %d format [sentry-logger: formatting with args ('not a number',)")


def test_records_below_the_level_are_not_captured(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk(level=logging.WARNING)
    log.info("ignored")
    log.warning("kept")
    assert [e["message"] for e in (one(sink),)] == ["kept"]


def test_buffer_bounds_in_records_and_bytes() -> None:
    buffer = Buffer(max_records=4, max_bytes=4 * SMALL_ENTRY_BYTES + 50_000, batch_size=100)

    def entry(size: int) -> Any:
        return (time.time(), "INFO", "m", "l", None, None, None, None, None, None, size)

    assert buffer.put(entry(20_000)) and buffer.put(entry(20_000))
    assert not buffer.put(entry(20_000))  # large entries: the byte budget is spent
    assert buffer.put(entry(100)) and buffer.put(entry(100))
    assert not buffer.put(entry(100))  # the record bound
    assert len(buffer.take(10, 1 << 30)) == 4
    assert buffer.put(entry(20_000))  # taking released the bytes


def test_a_dictconfig_that_closes_all_handlers_does_not_stop_delivery(
    sink: Sink, init_sdk: Callable[..., Any]
) -> None:
    import logging.config

    init_sdk()
    # what uvicorn, gunicorn and Django do at start-up: close every existing handler
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                               "loggers": {"some.library": {"level": "INFO"}}})
    log.info("still delivered")
    assert one(sink)["message"] == "still delivered"

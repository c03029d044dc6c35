"""The live tail hub on its real backends: memory, the machine's Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from server.hub import Hub, HubClosed, LogBatch, Skipped, create_hub
from server.hub._postgres import split_utf8
from server.ingest_validate import COLUMNS


def row(log_id: int, app_id: int = 1, message: str = "hello", level: int = 20) -> tuple[Any, ...]:
    values = {c: None for c in COLUMNS}
    values.update(id=log_id, app_id=app_id, ts=1_700_000_000_000_000, received_at=1_700_000_000_000_000, level=level,
                  level_name={20: "INFO", 40: "ERROR"}[level], service="api", logger="app", message=message,
                  attributes="{}", environment="prod")
    return tuple(values[c] for c in COLUMNS)


@pytest.fixture(params=["memory", "redis", "postgresql"])
def hub_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("pg_url"))


async def _collect(sub: Any, want: int, timeout: float = 10) -> list[LogBatch | Skipped]:
    got: list[LogBatch | Skipped] = []
    lines = 0
    while lines < want:
        item = await sub.get(timeout)
        assert item is not None, f"timed out after {lines} of {want} lines"
        got.append(item)
        lines += len(item.logs) if isinstance(item, LogBatch) else item.count
    return got


def test_subscriber_gets_published_batches_of_its_app_in_order(hub_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"

    async def go() -> None:
        publisher = create_hub(hub_url, channel_prefix=prefix)
        await publisher.connect()
        # A second hub stands for a second server process (shared backends only).
        reader = publisher if hub_url == "memory://" else create_hub(hub_url, channel_prefix=prefix)
        if reader is not publisher:
            await reader.connect()
        try:
            async with reader.subscribe(7, match=lambda line: line["level"] == "ERROR") as sub:
                big = "é" * 9_000  # 18 kB of UTF-8: more than one NOTIFY payload
                await publisher.publish_rows([row(1, 7), row(2, 8, level=40), row(3, 7, level=40)])
                await publisher.publish_rows([row(4, 7, big, level=40), row(5, 7)])
                await publisher.publish_rows([row(i, 7, level=40) for i in range(6, 106)])
                got = await _collect(sub, 102)
                ids = [line["id"] for item in got if isinstance(item, LogBatch) for line in item.logs]
                assert ids == [3, 4, *range(6, 106)]
                assert got[1].logs[0]["message"] == big and isinstance(got[1], LogBatch)
                assert reader.metrics()["subscribers"] == 1
            assert reader.metrics()["subscribers"] == 0
        finally:
            if reader is not publisher:
                await reader.disconnect()
            await publisher.disconnect()

    asyncio.run(go())


def test_a_stalled_subscriber_skips_with_one_marker_and_others_get_everything() -> None:
    async def go() -> None:
        hub = create_hub("memory://", queue_max_lines=10)
        await hub.connect()
        try:
            async with hub.subscribe(1) as fast, hub.subscribe(1) as stalled:
                received: list[int] = []
                for n in range(40):  # 40 batches of 3 lines; `fast` keeps up, `stalled` never reads
                    await hub.publish_rows([row(3 * n + i) for i in (1, 2, 3)])
                    while len(received) < 3 * (n + 1):
                        item = await fast.get(5)
                        assert isinstance(item, LogBatch)
                        received.extend(line["id"] for line in item.logs)
                assert received == list(range(1, 121))
                # stalled: 3 batches (9 lines) fit its bound of 10, then a skip until it drains.
                items = [stalled.get_nowait() for _ in range(4)]
                assert [len(i.logs) for i in items[:3] if isinstance(i, LogBatch)] == [3, 3, 3]
                assert items[3] == Skipped(count=111, after_id=9, through_id=120)
                assert stalled.get_nowait() is None
                await hub.publish_rows([row(121)])
                again = await stalled.get(5)
                assert isinstance(again, LogBatch) and again.logs[0]["id"] == 121
                metrics = hub.metrics()
                assert metrics["skipped_lines"] == 111 and metrics["skip_events"] == 1
                assert metrics["publish_dropped_batches"] == 0
        finally:
            await hub.disconnect()

    asyncio.run(go())


def test_publishing_never_waits_and_a_full_outbox_drops_and_counts() -> None:
    async def go() -> None:
        hub = Hub(create_hub("memory://").backend, publish_queue_max=5)
        # Not connected: nothing drains the outbox, as if the backend hung.
        async with hub.subscribe(1):
            for n in range(8):
                await asyncio.wait_for(hub.publish_rows([row(n + 1)]), 1)
        assert hub.metrics()["publish_dropped_batches"] == 3
        assert hub.metrics()["outbox"] == 5

    asyncio.run(go())


def test_disconnect_ends_subscriptions() -> None:
    async def go() -> None:
        hub = create_hub("memory://")
        await hub.connect()
        async with hub.subscribe(1) as sub:
            waiter = asyncio.create_task(sub.get())
            await asyncio.sleep(0)
            await hub.disconnect()
            with pytest.raises(HubClosed):
                await asyncio.wait_for(waiter, 5)

    asyncio.run(go())


def test_unknown_backend_is_refused_with_the_setting_name() -> None:
    with pytest.raises(ValueError, match="HUB_URL"):
        create_hub("kafka://localhost")


def test_split_utf8_never_cuts_a_character() -> None:
    data = ("aé€😀" * 1000).encode()
    pieces = split_utf8(data, 7)
    assert "".join(pieces).encode() == data
    assert all(len(p.encode()) <= 7 for p in pieces)

"""A batch: the gzip request body for up to ``batch_size`` records, with its id.

The body is built once, when the batch is formed, and reused byte for byte
on every retry and in the spool, so the ``batch_id`` and the attached
``client_report`` never change between attempts (the server de-duplicates
on ``batch_id``).
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._version import SDK_NAME, __version__

try:  # optional: `pip install sentry-logger[fast]`; serialising is most of the worker's CPU
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]
from .record import Entry, Limits, entry_to_wire
from .spool import SpoolFile

__all__ = ["Batch", "build_batch", "decode_body", "split_batch"]

_SDK = {"name": SDK_NAME, "version": __version__}


@dataclass
class Batch:
    """A formed batch and its delivery state."""

    batch_id: str
    body: bytes
    records: int
    report: dict[str, Any] | None = None
    spooled: SpoolFile | None = None
    attempts: int = 0


def build_batch(
    entries: Sequence[Entry],
    *,
    common: Mapping[str, Any],
    limits: Limits,
    report: dict[str, Any] | None,
) -> Batch:
    """Serialise ``entries`` into a gzip body with a fresh uuid4-hex ``batch_id``."""
    logs = [entry_to_wire(e, common, limits) for e in entries]
    batch_id = uuid.uuid4().hex
    return Batch(batch_id, _encode(batch_id, logs, report), len(logs), report)


def _encode(batch_id: str, logs: list[dict[str, Any]], report: dict[str, Any] | None) -> bytes:
    payload: dict[str, Any] = {"batch_id": batch_id, "sdk": _SDK}
    if report:
        payload["client_report"] = report
    payload["logs"] = logs
    data = None
    if _orjson is not None:
        try:
            data = _orjson.dumps(payload, default=str)
        except Exception:  # e.g. a lone surrogate in a str: the stdlib path below copes
            data = None
    if data is None:
        # "replace" turns lone surrogates (possible in Python str, invalid in
        # UTF-8) into "?" instead of making the whole batch undecodable.
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
        data = text.encode("utf-8", "replace")
    # Level 1: the worker's CPU competes with the app for the GIL; log batches
    # still shrink several-fold.
    return gzip.compress(data, compresslevel=1, mtime=0)


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a gzip body (for splitting and for spooled reports)."""
    data = json.loads(gzip.decompress(body))
    if not isinstance(data, dict):
        raise TypeError("batch body is not a JSON object")
    return data


def split_batch(batch: Batch) -> list[Batch]:
    """Two halves of a batch the server found too large (413), with derived ids.

    The first half keeps the client report. Ids are ``<id>-1``/``<id>-2`` so a
    retried half is still de-duplicated.
    """
    data = decode_body(batch.body)
    logs: list[dict[str, Any]] = data.get("logs", [])
    report = data.get("client_report")
    middle = len(logs) // 2
    halves = []
    for n, (part, part_report) in enumerate(((logs[:middle], report), (logs[middle:], None)), start=1):
        batch_id = f"{batch.batch_id}-{n}"[:128]
        halves.append(Batch(batch_id, _encode(batch_id, part, part_report), len(part), part_report))
    return halves


def report_of(batch: Batch) -> dict[str, Any] | None:
    """The client report a batch carries (read from the body for spooled ones)."""
    if batch.report is not None or batch.spooled is None:
        return batch.report
    try:
        report = decode_body(batch.body).get("client_report")
    except (OSError, ValueError, TypeError, EOFError):
        return None
    return report if isinstance(report, dict) else None

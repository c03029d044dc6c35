"""POST /ingest: authenticate the key, validate each record, commit, answer 202.

Whole-request problems answer 400/401/413/429/503 and store nothing; per-record problems
reject that record only (reported by index, field and reason). The 202 is sent after the
accepted records are committed.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server._pg_writer import prepare_copy
from server.apps import IngestKey
from server.errors import ApiError
from server.ingest_fast import FastPayload, fast_payload, fast_rows
from server.ingest_keys import IngestKeys
from server.ingest_validate import Limits, RecordError, replace_nul, validate_record
from server.security import API_KEY_RE, now_us
from server.writer import Batch, KeyRevoked, WriterOverloaded, WriterStopped

__all__ = ["ingest"]

_INVALID_KEY = "missing, unknown or revoked API key"


def _invalid_key() -> ApiError:
    return ApiError(401, "invalid_api_key", _INVALID_KEY, headers={"WWW-Authenticate": "Bearer"})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, "invalid_gzip", f"the body is not valid gzip: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise ApiError(
            413, "body_too_large", f"the decompressed body is over the limit of {limit} bytes (INGEST_MAX_BODY_BYTES)"
        )
    return data


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body is {size} bytes or more; the limit is {limit} bytes (INGEST_MAX_BODY_BYTES)")


def _api_key(request: Request, in_body: Any) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    header = request.headers.get("x-api-key")
    if header:
        return header.strip()
    return in_body if isinstance(in_body, str) else ""


def _general_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object with a 'logs' list")
    if b"\\u0000" in body:  # JSON spells NUL only so; rarely there, so one search of the bytes first
        replace_nul(payload)  # in place
    return payload


def _fields(fast: FastPayload | None, body: bytes) -> tuple[Any, Any, Any, Any]:
    """The body's api_key, logs, batch_id and client_report, as sent (`ingest` checks them)."""
    if fast is not None:
        return fast.api_key, fast.logs, fast.batch_id, fast.client_report
    payload = _general_payload(body)
    return payload.get("api_key"), payload.get("logs"), payload.get("batch_id"), payload.get("client_report")


def _check_request(state: Any, found: IngestKey, logs: Any, batch_id: Any, report: Any) -> None:
    """The whole-request checks after the key's: 400 for a missing field or one of the wrong
    type, 413 past the records limit, 429 past the key's rate limit."""
    if not isinstance(logs, list):
        raise ApiError(400, "invalid_body", "'logs' is required and must be a list", field="logs")
    max_records = state.settings.ingest_max_records
    if len(logs) > max_records:
        raise ApiError(
            413, "too_many_records", f"{len(logs)} records in one request; the limit is {max_records} (INGEST_MAX_RECORDS)",
            field="logs",
        )
    if batch_id is not None and (not isinstance(batch_id, str) or not 1 <= len(batch_id) <= 128):
        raise ApiError(400, "invalid_body", "batch_id must be a string of 1 to 128 characters", field="batch_id")
    if report is not None and not isinstance(report, dict):
        raise ApiError(400, "invalid_body", "client_report must be an object", field="client_report")
    wait = state.ingest_limiter.take(found.key_id, max(1, len(logs)))
    if wait:
        raise ApiError(
            429, "rate_limited", "this API key is over its rate limit (INGEST_RATE_LIMIT records per second)",
            headers={"Retry-After": state.ingest_limiter.retry_after(wait)},
        )


async def ingest(request: Request) -> Response:
    state = request.state
    settings = state.settings
    body = await _read_body(request, settings.ingest_max_body_bytes)
    # SDK-shaped bodies take the fast path (server.ingest_fast); the general one names every problem.
    fast = fast_payload(body)
    key_in_body, logs, batch_id, report = _fields(fast, body)
    key = _api_key(request, key_in_body)
    keys: IngestKeys = state.ingest_keys
    # A cached key is checked again by the commit (server.ingest_keys), or below when none follows.
    found, cached = await keys.find(key) if API_KEY_RE.match(key) else (None, False)
    if found is None:
        raise _invalid_key()
    try:
        _check_request(state, found, logs, batch_id, report)
    except ApiError:
        if cached and await keys.recheck(key) is None:
            raise _invalid_key() from None
        raise

    limits: Limits = state.ingest_limits
    received_at = now_us()
    errors: list[dict[str, Any]] = []
    requests: list[tuple[int, str, int, int]] = []  # (index in rows, route, duration_us, duration_bin)
    rows = None if fast is None else fast_rows(fast.logs, found.app_id, found.environment, received_at, limits, requests)
    if rows is None:
        if fast is not None:  # a log the fast path does not take: the general path, from the start
            requests.clear()
            logs = _general_payload(body)["logs"]
        rows = []
        for index, record in enumerate(logs):
            try:
                rows.append(validate_record(record, found.app_id, found.environment, received_at, limits, requests, len(rows)))
            except RecordError as exc:
                errors.append({"index": index, "field": exc.field, "message": exc.message})

    accepted, rejected, duplicate = 0, len(errors), False
    if rows or batch_id is not None or report:
        writer = state.writer
        batch = Batch(found.app_id, found.key_id, rows, len(errors), batch_id, report, requests or None)
        # COPY data (request fields, messages, ts range) made here, where requests run side by
        # side with the commit in progress, not on the writer's serial path.
        if rows and writer.db.dialect == "postgresql":
            batch.copy = prepare_copy(rows, requests)
        try:
            accepted, rejected, duplicate = await writer.submit(batch)
        except WriterOverloaded:
            raise ApiError(503, "ingest_overloaded", "the server is writing a backlog; retry shortly",
                           headers={"Retry-After": "1"}) from None
        except KeyRevoked:
            keys.forget(found.key_id)
            raise _invalid_key() from None
        except WriterStopped:
            raise ApiError(503, "shutting_down", "the server is shutting down; retry shortly",
                           headers={"Retry-After": "2"}) from None
        except Exception:
            raise ApiError(503, "storage_unavailable", "the database did not accept the write; retry shortly",
                           headers={"Retry-After": "2"}) from None
    elif cached and await keys.recheck(key) is None:  # no commit to check the key: check it here
        raise _invalid_key()
    body_out: dict[str, Any] = {"accepted": accepted, "rejected": rejected, "batch_id": batch_id, "duplicate": duplicate}
    body_out["errors"] = [] if duplicate else errors
    return Response(orjson.dumps(body_out), status_code=202, media_type="application/json")

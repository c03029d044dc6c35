"""One HTTP attempt at delivering a batch, classified into what to do next.

``Transport.send`` never raises: every outcome (accepted, retry later, key
rejected, batch refused) is a ``SendResult`` for the worker to act on. The
HTTP client is created per process (after a fork the child builds its own
so that two processes never share a pooled socket).
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ._version import SDK_NAME, __version__

__all__ = ["SendResult", "Transport", "describe_error"]

Outcome = Literal["ok", "retry", "auth_failed", "too_large", "rejected"]
_MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class SendResult:
    """What happened to one attempt and how the worker should react."""

    outcome: Outcome
    detail: str
    status: int | None = None
    accepted: int = 0
    rejected: int = 0
    retry_after: float | None = None


class Transport:
    """POSTs gzip-compressed batch bodies to ``{dsn}/ingest`` over keep-alive."""

    def __init__(
        self,
        ingest_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.ingest_url = ingest_url
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "User-Agent": f"{SDK_NAME}-python/{__version__}",
            },
            follow_redirects=False,
            transport=http_transport,
        )

    def send(self, body: bytes) -> SendResult:
        """POST one gzip body; classify the answer (never raises)."""
        try:
            response = self._client.post(self.ingest_url, content=body)
        except httpx.TransportError as exc:
            return SendResult("retry", describe_error(exc, self.ingest_url))
        except Exception as exc:  # a bug or an exotic transport: retry rather than lose
            return SendResult("retry", f"unexpected error {type(exc).__name__}: {exc}")
        return classify(response)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


def classify(response: httpx.Response) -> SendResult:
    """Map an HTTP answer of the ingest endpoint onto a ``SendResult``."""
    status = response.status_code
    payload = _json(response)
    if 200 <= status < 300:
        return SendResult("ok", f"HTTP {status}", status, accepted=_int(payload.get("accepted")),
                          rejected=_int(payload.get("rejected")))
    raw_error = payload.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    code = error.get("code") or response.reason_phrase or "error"
    detail = f"HTTP {status} {code}" + (f": {error['message']}" if error.get("message") else "")
    if status in (408, 429) or status >= 500:
        return SendResult("retry", detail, status, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status in (401, 403):
        return SendResult("auth_failed", detail, status)
    if status == 413:
        return SendResult("too_large", detail, status)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        detail += f" (the server redirects to {where}; set the DSN to the final URL)"
    elif status in (404, 405):
        detail += f" (is {response.request.url} a sentry-logger server? check the DSN)"
    return SendResult("rejected", detail, status)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP date), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def describe_error(exc: BaseException, url: str) -> str:
    """A sentence naming the network problem: DNS, refused, timeout, TLS..."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    host = httpx.URL(url).host
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timeout connecting to {url}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout waiting for {url} to answer"
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in str(exc) \
            or "nodename nor servname" in str(exc):
        return f"DNS failure: cannot resolve host {host!r} of {url}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return f"connection refused at {url} (is the server running and listening there?)"
    if any("ssl" in type(e).__name__.lower() or "certificate" in str(e).lower() for e in chain):
        return f"TLS error talking to {url}: {exc}"
    return f"network error talking to {url}: {type(exc).__name__}: {exc}".rstrip(": ")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

"""The background thread that turns buffered records into delivered batches.

Order of work, one step at a time: the batch at the head of ``pending`` (an
in-memory batch being retried, or the oldest spool file), then the buffer
when a batch is due (``batch_size`` records waiting, ``flush_interval``
elapsed, or a flush/shutdown asked for). Records therefore reach the server
in the order they were logged, across outages and restarts.

On a retryable failure (connection error, timeout, 408, 429, 5xx) the head
batch is written to the spool (when enabled) so it survives a crash, and the
worker backs off exponentially with jitter, or exactly as long as the
server's ``Retry-After`` asks. While it waits, due batches go to the spool
instead of piling up in memory. Permanent failures (401, 413 of one record,
other 4xx) drop the batch, count it and log one clear line on the SDK's logger.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .batch import Batch, report_of, split_batch
from .buffer import Buffer
from .record import Entry
from .report import Counters
from .spool import Spool
from .transport import SendResult, Transport

__all__ = ["WORKER_THREAD_NAME", "Worker", "quiet_http_client_logs"]

WORKER_THREAD_NAME = "sentry-logger-worker"
_HTTP_CLIENT_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
                        "httpcore.socks")


def _not_from_the_worker(record: logging.LogRecord) -> bool:
    return record.threadName != WORKER_THREAD_NAME


def quiet_http_client_logs() -> None:
    """Keep the worker's own HTTP requests out of the app's logs.

    httpx logs every request at INFO ("HTTP Request: POST .../ingest 202"); from
    the worker thread those lines would reach the application's console and
    files. A standard logger filter drops them (only them: the app's own httpx
    requests are logged as before).
    """
    for name in _HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _not_from_the_worker not in logger.filters:
            logger.addFilter(_not_from_the_worker)

BuildBatch = Callable[[list[Entry], "dict[str, Any] | None"], Batch]


class Worker:
    """Owns ``pending`` batches, the transport and the thread that sends them."""

    def __init__(
        self,
        *,
        buffer: Buffer,
        counters: Counters,
        make_transport: Callable[[], Transport],
        build_batch: BuildBatch,
        spool: Spool | None,
        max_batch_records: int,
        max_batch_bytes: int,
        flush_interval: float,
        batch_linger: float,
        backoff: tuple[float, float],
        log: logging.Logger,
        on_tick: Callable[[], None] | None = None,
        tick_interval: float = 30.0,
    ) -> None:
        self.buffer = buffer
        self.counters = counters
        self.spool = spool
        self._make_transport = make_transport
        self._build_batch = build_batch
        self._max_batch_records = max(max_batch_records, buffer.batch_size)
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._batch_linger = batch_linger
        self._backoff = backoff
        self._log = log
        self._on_tick = on_tick
        self._tick_interval = tick_interval
        self._reset_state()

    def _reset_state(self) -> None:
        self._cond = threading.Condition()
        self._pending: deque[Batch] = deque()
        self._thread: threading.Thread | None = None
        self.started = False  # a plain attribute: the handler reads it on every record
        self.thread_ident = -1  # never equal to a LogRecord.thread (an ident, or None)
        self._flush_requests = 0
        self._stopping = False
        self._closed = False
        self._failures = 0
        self._next_attempt = 0.0
        self._last_send = 0.0
        self._holding = False
        self.steps = 0  # loop iterations, for tests: a busy loop shows up here
        self._next_flush = time.monotonic() + self._flush_interval
        self._next_tick = time.monotonic() + self._tick_interval
        self._outage: str | None = None
        self._said: set[str] = set()

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread (idempotent)."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=WORKER_THREAD_NAME, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return
            self._thread = thread
            self.thread_ident = thread.ident or -1
            self.started = True

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and batches (the parent sends them)."""
        self._reset_state()
        if self.spool is not None:
            self.spool.reset_after_fork()

    def wake(self) -> None:
        self.buffer.ready.set()

    def flush(self, timeout: float) -> bool:
        """Wait until everything logged so far is delivered; False on timeout."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requests += 1
        self.wake()
        try:
            return self._wait_idle(deadline)
        finally:
            with self._cond:
                self._flush_requests -= 1

    def close(self, timeout: float) -> tuple[int, str]:
        """Flush within ``timeout``, stop the thread, then spool or drop what is left.

        Returns ``(records_left, what_happened)`` for the caller's exit note.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
        if self._thread is not None or len(self.buffer):
            self.start()
            self.wake()
            self._wait_idle(deadline)
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            entries = self.buffer.take(len(self.buffer) + 1, 1 << 62)
        self.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        return self._dispose(left, entries)

    def _wait_idle(self, deadline: float) -> bool:
        with self._cond:
            while not self._idle():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return self._idle()
                self._cond.wait(min(remaining, 0.5))
            return True

    @property
    def last_problem(self) -> str | None:
        """The current outage's cause, if the server is unreachable right now."""
        return self._outage

    def _idle(self) -> bool:
        return not self._pending and not len(self.buffer) and not (self.spool is not None and self.spool.pending)

    # -- the thread ------------------------------------------------------

    def _run(self) -> None:
        transport = self._make_transport()
        try:
            while not self._closed:
                if len(self.buffer) < self.buffer.batch_size:
                    self.buffer.ready.clear()
                self.steps += 1
                try:
                    wait = self._step(transport)
                except Exception:  # never let a bug kill the thread: log it and keep going
                    self._log.exception("sentry-logger: internal error in the worker (please report it)")
                    wait = 1.0
                with self._cond:
                    self._cond.notify_all()
                if wait is None:
                    return
                if wait > 0:
                    if self._holding:  # records wait on purpose (linger, backoff): don't spin on `ready`
                        self.buffer.ready.clear()
                    self.buffer.ready.wait(wait)
        finally:
            transport.close()

    def _step(self, transport: Transport) -> float | None:
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + self._tick_interval
            self._tick()
        flushing = self._stopping or self._flush_requests > 0
        waiting = len(self.buffer)
        # Under load, linger after a request so that batches grow (up to
        # max_batch_records) instead of requests multiplying: each request
        # costs the worker (and so the app's GIL) far more than a record.
        linger_until = self._last_send + self._batch_linger
        full = waiting >= self.buffer.batch_size and (waiting >= self._max_batch_records or now >= linger_until)
        due = flushing or full or now >= self._next_flush
        self._holding = False
        head = self._head(due, now)
        if head is None:
            if self._stopping and self._idle():
                return None
            wake = min(self._next_flush, self._next_tick)
            if waiting >= self.buffer.batch_size:
                self._holding = True
                wake = min(wake, linger_until)
            return max(0.0, wake - now)
        if now < self._next_attempt:
            if self.spool is not None:
                self._offload(due, now)
            elif now >= self._next_flush:
                self._next_flush = now + self._flush_interval  # nothing to do with due records but wait
            self._holding = True  # backing off: a full buffer must not wake us up in a loop
            return max(0.0, min(self._next_attempt, self._next_flush) - now)
        self._attempt(head, transport)
        return 0.0

    def _head(self, due: bool, now: float) -> Batch | None:
        if self._pending:
            return self._pending[0]
        if self.spool is not None and self.spool.pending:
            claimed = self.spool.claim_oldest()
            if claimed is not None:
                spooled, body = claimed
                batch = Batch(spooled.batch_id, body, spooled.records, spooled=spooled)
                with self._cond:
                    self._pending.append(batch)
                return batch
        if due and len(self.buffer):
            self._next_flush = now + self._flush_interval
            with self._cond:
                batch = self._form_batch()
                self._pending.append(batch)
            return batch
        if due:
            self._next_flush = now + self._flush_interval
        return None

    def _form_batch(self) -> Batch:
        # batch_size records make a batch due; a backlog goes out in bigger
        # requests (up to max_batch_records, the server's INGEST_MAX_RECORDS).
        entries = self.buffer.take(self._max_batch_records, self._max_batch_bytes)
        return self._build_batch(entries, self.counters.take_report())

    def _offload(self, due: bool, now: float) -> None:
        """While backing off, move due batches from memory to the spool."""
        assert self.spool is not None
        while len(self.buffer) >= self.buffer.batch_size or (due and len(self.buffer)):
            with self._cond:
                batch = self._form_batch()
            self._to_spool(batch, claimed=False)
            due = self._stopping or self._flush_requests > 0
        self._next_flush = now + self._flush_interval

    def _to_spool(self, batch: Batch, *, claimed: bool) -> bool:
        assert self.spool is not None
        spooled = self.spool.write(batch.batch_id, batch.body, batch.records, claimed=claimed)
        if spooled is None:
            if not claimed:
                self._drop(batch, "spool_full", f"spool {self.spool.directory} is full or not writable")
            return False
        batch.spooled = spooled
        self.counters.spooled(batch.records)
        return True

    def _attempt(self, batch: Batch, transport: Transport) -> None:
        if batch.spooled is not None and self.spool is not None:
            self.spool.touch(batch.spooled)
        if batch.attempts:
            self.counters.retried()
        batch.attempts += 1
        self._last_send = time.monotonic()
        result = transport.send(batch.body)
        with self._cond:
            if self._closed:
                return  # close() took over the pending batches
            if result.outcome == "ok":
                self._delivered(batch, result)
            elif result.outcome == "retry":
                self._failed(batch, result)
            else:
                self._pending.popleft()
                self._refused(batch, result)

    def _delivered(self, batch: Batch, result: SendResult) -> None:
        self._pending.popleft()
        if batch.spooled is not None and self.spool is not None:
            self.spool.delete(batch.spooled)
        self.counters.sent(batch.records)
        self.counters.rejected(result.rejected)
        if self._outage is not None:
            self._log.warning("sentry-logger: delivering logs again (the problem was: %s)", self._outage)
        self._outage = None
        self._failures = 0
        self._next_attempt = 0.0
        self._log.debug("sentry-logger: batch %s delivered (%d records, %d rejected)",
                        batch.batch_id, batch.records, result.rejected)

    def _failed(self, batch: Batch, result: SendResult) -> None:
        self._failures += 1
        low, high = self._backoff
        if result.retry_after is not None:
            delay = result.retry_after
        else:
            delay = min(high, low * 2 ** (self._failures - 1)) * random.uniform(0.5, 1.0)
        self._next_attempt = time.monotonic() + delay
        if self.spool is not None and batch.spooled is None:
            self._to_spool(batch, claimed=True)
        if self._outage is None:
            where = (f"spooling to {self.spool.directory}" if self.spool is not None
                     else f"keeping up to {self.buffer.max_records} records in memory")
            self._log.warning("sentry-logger: cannot deliver logs (%s); retrying with backoff, %s. "
                              "Run `sentry-logger test` to diagnose.", result.detail, where)
        self._outage = result.detail
        self._log.debug("sentry-logger: batch %s attempt %d failed (%s); next try in %.2fs",
                        batch.batch_id, batch.attempts, result.detail, delay)

    def _refused(self, batch: Batch, result: SendResult) -> None:
        if batch.spooled is not None and self.spool is not None:
            self.spool.delete(batch.spooled)
            batch.spooled = None
        if result.outcome == "too_large" and batch.records > 1:
            for half in reversed(split_batch(batch)):
                self._pending.appendleft(half)
            self._log.debug("sentry-logger: batch %s too large (%s); split in two", batch.batch_id, result.detail)
            return
        if result.outcome == "auth_failed":
            self._drop(batch, "auth_failed", "")
            self._say_once("auth", logging.ERROR, "sentry-logger: the server rejected the API key (%s). Logs are "
                           "being dropped and counted. Check SENTRY_API_KEY or init(api_key=...): the key may be "
                           "revoked, mistyped or from another server.", result.detail)
        elif result.outcome == "too_large":
            self._drop(batch, "too_large", "")
            self._say_once("413", logging.WARNING, "sentry-logger: the server refused a record as too large (%s); "
                           "it was dropped and counted.", result.detail)
        else:
            self._drop(batch, "rejected_by_server", "")
            self._say_once(f"reject-{result.status}", logging.ERROR, "sentry-logger: the server refused a batch "
                           "(%s); it was dropped and counted.", result.detail)
        self._failures = 0
        self._next_attempt = 0.0

    def _drop(self, batch: Batch, reason: str, why: str) -> None:
        self.counters.restore_report(report_of(batch))
        self.counters.drop(reason, batch.records)
        if why:
            self._say_once(reason, logging.WARNING, "sentry-logger: dropping log records: %s", why)

    def _say_once(self, key: str, level: int, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            self._log.log(level, message, *args)

    def _tick(self) -> None:
        if self.spool is not None and not self.spool.pending:
            self.spool.scan()  # pick up files another process left behind
        if self._on_tick is not None:
            self._on_tick()

    # -- exit ------------------------------------------------------------

    def _dispose(self, left: list[Batch], entries: list[Entry]) -> tuple[int, str]:
        if entries:
            left.append(self._build_batch(entries, self.counters.take_report()))
        count = sum(b.records for b in left)
        if not count:
            return 0, ""
        if self.spool is None:
            for batch in left:
                self.counters.drop("shutdown", batch.records)
            return count, "dropped (spool disabled)"
        spooled = 0
        for batch in left:
            if batch.spooled is not None:
                self.spool.release(batch.spooled)
                spooled += batch.records
            elif self._to_spool(batch, claimed=False):
                spooled += batch.records
        if spooled == count:
            return count, f"spooled to {self.spool.directory}; they will be sent by the next process using this key"
        return count, f"{spooled} spooled to {self.spool.directory}, {count - spooled} dropped (spool full)"

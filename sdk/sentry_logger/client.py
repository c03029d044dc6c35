"""A ``Client``: one resolved configuration with its buffer, worker, spool and handler.

``init()`` builds one and installs its handler on the root logger; tests and
advanced users may build their own. Defaults (see the SDK README for the why):
batches of 100 records or every 5 s, a buffer of 10,000 records / 32 MiB, a
spool of 64 MiB, a 2 s flush budget at exit.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .batch import Batch, build_batch
from .buffer import Buffer
from .options import ResolvedConfig
from .record import Entry, Limits
from .report import Counters
from .spool import Spool, spool_directory
from .transport import Transport
from .worker import Worker, quiet_http_client_logs

__all__ = ["Client", "ClientOptions", "default_spool_root"]

_log = logging.getLogger("sentry_logger")


def default_spool_root() -> Path:
    """``$SENTRY_LOGGER_SPOOL_DIR`` or ``~/.sentry_logger/spool``."""
    override = os.environ.get("SENTRY_LOGGER_SPOOL_DIR")
    return Path(override).expanduser() if override else Path.home() / ".sentry_logger" / "spool"


@dataclass(frozen=True)
class ClientOptions:
    """Tunables of a client; every bound here is documented in the SDK README."""

    batch_size: int = 100
    flush_interval: float = 5.0
    batch_linger: float = 0.2
    max_queue_records: int = 10_000
    max_queue_bytes: int = 32 * 1024 * 1024
    max_record_bytes: int = 256 * 1024
    max_batch_records: int = 1000
    max_batch_bytes: int = 1024 * 1024
    spool: bool = True
    spool_dir: Path | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    shutdown_timeout: float = 2.0
    timeout: float = 10.0
    backoff: tuple[float, float] = (0.5, 30.0)
    limits: Limits = field(default_factory=Limits)


class Client:
    """Everything one configuration needs to capture and deliver records."""

    def __init__(
        self,
        config: ResolvedConfig,
        options: ClientOptions | None = None,
        *,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        from .handler import SentryLoggerHandler

        self.config = config
        self.options = options = options or ClientOptions()
        self._http_transport = http_transport
        self.counters = Counters()
        self.buffer = Buffer(options.max_queue_records, options.max_queue_bytes, options.batch_size)
        self.spool = self._open_spool() if options.spool else None
        self._common: dict[str, Any] = {
            "service": config.service[:256],
            "environment": config.environment[:256],
            "host": socket.gethostname()[:256],
        }
        if config.release:
            self._common["release"] = config.release[:256]
        self.worker = Worker(
            buffer=self.buffer,
            counters=self.counters,
            make_transport=self._make_transport,
            build_batch=self._build_batch,
            spool=self.spool,
            max_batch_records=options.max_batch_records,
            max_batch_bytes=options.max_batch_bytes,
            flush_interval=options.flush_interval,
            batch_linger=options.batch_linger,
            backoff=options.backoff,
            log=_log,
            on_tick=self._check_attached,
        )
        self.handler = SentryLoggerHandler(self)
        self._closed = False
        self._installed = False
        self._warned_detached = False

    def _open_spool(self) -> Spool | None:
        root = self.options.spool_dir or default_spool_root()
        directory = spool_directory(root, self.config.dsn, self.config.api_key)
        try:
            return Spool(directory, self.options.spool_max_bytes)
        except OSError as exc:
            _log.warning("sentry-logger: cannot use the spool directory %s (%s); continuing without a spool "
                         "(undelivered records stay in memory only). Set SENTRY_LOGGER_SPOOL_DIR to a writable "
                         "directory or SENTRY_LOGGER_SPOOL=0.", directory, exc.strerror or exc)
            return None

    def _make_transport(self) -> Transport:
        return Transport(self.config.ingest_url, self.config.api_key, timeout=self.options.timeout,
                         http_transport=self._http_transport)

    def _build_batch(self, entries: list[Entry], report: dict[str, Any] | None) -> Batch:
        return build_batch(entries, common=self._common, limits=self.options.limits, report=report)

    # -- installation ----------------------------------------------------

    def install(self, level: int = logging.INFO) -> None:
        """Attach the handler to the root logger, lowering the root level to ``level`` if needed."""
        self.handler.setLevel(level)
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        self._installed = True
        quiet_http_client_logs()
        if self.spool is not None and self.spool.pending:
            self.worker.start()  # replay what a previous process left, even before the first record
        if root.getEffectiveLevel() > level:
            root.setLevel(level)

    def uninstall(self) -> None:
        self._installed = False
        logging.getLogger().removeHandler(self.handler)

    def _check_attached(self) -> None:
        if self._installed and not self._warned_detached and self.handler not in logging.getLogger().handlers:
            self._warned_detached = True
            _log.warning("sentry-logger: the handler is no longer attached to the root logger, so no logs are "
                         "captured. logging.basicConfig(force=True) or a logging.config.dictConfig with a 'root' "
                         "section removes it: call sentry_logger.init() after configuring logging.")

    # -- public operations -------------------------------------------------

    def flush(self, timeout: float = 2.0) -> bool:
        """Block until everything logged so far is delivered (True) or ``timeout`` passes (False)."""
        if self._closed:
            return not len(self.buffer)
        return self.worker.flush(timeout)

    def close(self, timeout: float | None = None, *, at_exit: bool = False) -> None:
        """Detach, flush within ``timeout`` (default ``shutdown_timeout``) and stop the worker.

        Records still undelivered go to the spool (or are dropped and counted
        as ``shutdown`` without one); either way one line says so on stderr.
        """
        if self._closed:
            return
        self._closed = True
        self.uninstall()
        problem = self.worker.last_problem
        left, outcome = self.worker.close(self.options.shutdown_timeout if timeout is None else timeout)
        if left:
            why = f" ({self.worker.last_problem or problem})" if (self.worker.last_problem or problem) else ""
            when = "at exit" if at_exit else "at shutdown"
            try:
                sys.stderr.write(f"sentry-logger: {left} log records not delivered {when}{why}: {outcome}\n")
                sys.stderr.flush()
            except Exception:
                pass

    def stats(self) -> dict[str, Any]:
        """Counters since start plus current buffer and spool occupancy."""
        data = self.counters.totals()
        data["buffered_records"] = len(self.buffer)
        data["buffered_bytes"] = self.buffer.bytes
        data["spool_dir"] = str(self.spool.directory) if self.spool is not None else None
        data["spool_bytes"] = self.spool.size_bytes if self.spool is not None else 0
        return data

    def after_fork_in_child(self) -> None:
        """Give a forked child its own empty buffer, counters and (lazily started) worker."""
        self.buffer.reset_after_fork()
        self.counters.reset()
        self.worker.reset_after_fork()
        self._warned_detached = False

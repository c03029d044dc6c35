"""Per-call overhead of ``logger.info`` with the sentry-logger SDK handler attached.

Compares, in one run and one process:

- ``no handler``: the logger has no handler at all (the baseline);
- ``QueueHandler``: ``logging.handlers.QueueHandler`` + ``QueueListener`` (to a NullHandler);
- ``sdk (worker idle)``: the SDK handler with its worker never sending (huge
  flush interval); the buffer is emptied between timed chunks of 1,000 calls,
  as the worker would, so only the cost on the calling thread is measured;
- ``sdk (worker sending)``: the SDK handler with default batching, its worker
  sending to a local sink server (a separate process), so the worker's GIL
  share is included;
- ``sdk (sending, paced)``: the same at a sustainable rate (1,000 calls, then a
  20 ms untimed pause in which the worker sends);
- ``sentry-sdk``: sentry-sdk's logging integration, if sentry-sdk is installed
  (measured last: it patches ``Logger.callHandlers``).

Prints the median and the best run of each scenario with its ratio to the baseline
(the best run is the least disturbed one on a shared, noisy machine).

Usage: .venv/bin/python bench/sdk_overhead.py [--calls 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sentry_logger

API_KEY = "sk_bench_" + "0" * 40
SINK = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"accepted": 100, "rejected": 0}'})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("sink did not start")


def measure(logger: logging.Logger, calls: int, between: Callable[[], None], chunk: int = 1000) -> float:
    """Seconds per ``logger.info`` call, timed in chunks; ``between`` runs untimed after each chunk."""
    info = logger.info
    elapsed = 0.0
    for base in range(0, calls, chunk):
        start = time.perf_counter()
        for i in range(base, base + chunk):
            info("user %s logged in from %s", i, "10.0.0.1")
        elapsed += time.perf_counter() - start
        between()
    return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    wait_port(port)
    spool_dir = tempfile.mkdtemp(prefix="sl-bench-")
    logger = logging.getLogger("bench")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    nothing: Callable[[], None] = lambda: None

    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(q)
    listener = logging.handlers.QueueListener(q, logging.NullHandler())
    listener.start()

    def drain_queue() -> None:
        while not q.empty():
            time.sleep(0.001)

    idle = sentry_logger.Client(
        sentry_logger.options.resolve(API_KEY, f"http://127.0.0.1:{port}", service="bench"),
        sentry_logger.ClientOptions(flush_interval=3600, batch_size=10**9, max_queue_records=args.calls + 1,
                                    max_queue_bytes=1 << 34, spool=False),
    )
    sending = sentry_logger.Client(
        sentry_logger.options.resolve(API_KEY, f"http://127.0.0.1:{port}", service="bench"),
        sentry_logger.ClientOptions(spool_dir=Path(spool_dir)),
    )
    paced = sentry_logger.Client(
        sentry_logger.options.resolve(API_KEY, f"http://127.0.0.1:{port}", service="bench"),
        sentry_logger.ClientOptions(spool_dir=Path(spool_dir)),
    )
    scenarios: dict[str, tuple[list[logging.Handler], Callable[[], None]]] = {
        "no handler": ([], nothing),
        "QueueHandler": ([queue_handler], drain_queue),
        "sdk (worker idle)": ([idle.handler], lambda: idle.buffer.take(10**9, 1 << 62) and None),
        # a flood: the worker competes for the GIL and cannot keep up; drops are counted
        "sdk (worker sending)": ([sending.handler], nothing),
        # 1,000 calls then a 20 ms pause (untimed): ~40k records/s, the worker sends in the pauses
        "sdk (sending, paced)": ([paced.handler], lambda: time.sleep(0.02)),
    }

    results: dict[str, list[float]] = {name: [] for name in scenarios}
    for name, (handlers, after) in scenarios.items():  # warm-up
        logger.handlers = handlers
        measure(logger, min(args.calls, 20_000), after)
    for _ in range(args.repeat):
        for name, (handlers, after) in scenarios.items():
            logger.handlers = handlers
            results[name].append(measure(logger, args.calls, after))
    logger.handlers = []
    for client in (sending, paced):
        client.flush(30)
    listener.stop()
    sentry_version = _measure_sentry_sdk(logger, args, results)
    sending_stats, paced_stats = sending.stats(), paced.stats()
    for client in (idle, sending, paced):
        client.close(5)
    sink.terminate()
    sink.wait()

    base = statistics.median(results["no handler"])
    base_min = min(results["no handler"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{args.calls} calls x {args.repeat} runs, scenarios interleaved"
          + (f", sentry-sdk {sentry_version}" if sentry_version else ", sentry-sdk not installed"))
    print(f"{'scenario':<26} {'median us':>9} {'ratio':>6}   {'best us':>8} {'ratio':>6}")
    for name, values in results.items():
        median, best = statistics.median(values), min(values)
        print(f"{name:<26} {median * 1e6:>9.2f} {median / base:>5.2f}x   {best * 1e6:>8.2f} {best / base_min:>5.2f}x")
    for name, stats in (("sdk (worker sending)", sending_stats), ("sdk (sending, paced)", paced_stats)):
        print(f"{name}: delivered {stats['sent']} records, dropped {stats['dropped'] or 'none'}")


def _measure_sentry_sdk(logger: logging.Logger, args: argparse.Namespace, results: dict[str, list[float]]) -> str | None:
    """sentry-sdk's logging integration, measured last: it patches ``Logger.callHandlers`` for good."""
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        return None
    sentry_sdk.init(dsn=None, integrations=[LoggingIntegration(level=logging.INFO, event_level=None)])
    logger.handlers = []
    results["sentry-sdk (breadcrumbs)"] = [measure(logger, args.calls, lambda: None) for _ in range(args.repeat)]
    return str(sentry_sdk.VERSION)


if __name__ == "__main__":
    main()

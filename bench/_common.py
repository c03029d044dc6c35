"""Helpers shared by the server benchmarks: sample logs, a server subprocess, a fast HTTP client."""

from __future__ import annotations

import asyncio
import csv
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
LOGHUB = ROOT.parent / "shared" / "data" / "loghub"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_LEVELS = {"info": "INFO", "warn": "WARNING", "warning": "WARNING", "error": "ERROR", "notice": "INFO",
           "debug": "DEBUG", "fatal": "CRITICAL", "severe": "ERROR", "e": "ERROR", "w": "WARNING", "i": "INFO", "d": "DEBUG"}


def sample_messages() -> list[tuple[str, str, str]]:
    """(level, service, message) from the loghub samples; levels mapped to ours (INFO by default)."""
    out: list[tuple[str, str, str]] = []
    for path in sorted(LOGHUB.glob("*_2k.log_structured.csv")):
        service = path.name.split("_")[0].lower()
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.DictReader(fh):
                level = _LEVELS.get((row.get("Level") or "").strip().lower(), "INFO")
                message = (row.get("Content") or "").strip()
                if message:
                    out.append((level, service, message))
    if not out:
        out = [("INFO", "app", f"request {i} served") for i in range(100)]
    return out


def machine_speed_ms() -> float:
    """The best of 20 timings of `sum(range(10**6))`, in ms: how fast this shared machine runs
    Python just now (its ingest figures follow it; docs/benchmarks.md)."""
    return min(timeit.repeat("sum(range(10**6))", number=1, repeat=20)) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh database URL of `kind` (sqlite or postgresql), removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{d}/bench.db"
        return
    name = f"sl_bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_env(database_url: str, data_dir: str, port: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": data_dir, "SECRET_KEY": "bench",
            "PORT": str(port), "DASHBOARD": "false", "INGEST_RATE_LIMIT": "0", "API_RATE_LIMIT": "0", **extra}


def provision(env: dict[str, str], root: Path = ROOT) -> tuple[str, str]:
    """Create a user with an app (with the server code of `root`); returns (api_key, personal token)."""
    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "server", *args], env=env, cwd=root, capture_output=True,
                             text=True, timeout=120, check=True)
        return out.stdout

    key = re.search(r"sk_\S+", run("apps", "create", "--owner", "bench@example.com", "--name", "bench"))
    token = re.search(r"slt_\S+", run("tokens", "create", "--user", "bench@example.com"))
    assert key and token
    return key.group(0), token.group(0)


@contextmanager
def server(env: dict[str, str], root: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """The server as the Procfile's `ingest` process runs it (`python -m server run
    --no-dashboard`: one uvicorn worker, with uvloop and httptools, its access log at the
    default level) on env's PORT, running the code of `root` (this checkout by default); yields
    the process. Its output (start-up lines, access log) goes to a file, printed if it fails."""
    cmd = [sys.executable, "-m", "server", "run", "--no-dashboard", "--host", "127.0.0.1", "--port", env["PORT"]]
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", int(env["PORT"])), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        output.seek(0)
                        raise RuntimeError(f"server did not start:\n{output.read().decode(errors='replace')[-4000:]}") from None
                    time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def http_post_loop(port: int, bodies: list[bytes], headers: dict[str, str], stop_at: float, counts: list[int]) -> None:
    """One keep-alive connection posting `bodies` round-robin until `stop_at`; counts[0] += 2xx answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head_extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        (f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head_extra}"
         f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies
    ]
    i = 0
    try:
        while time.monotonic() < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if status_line.split()[1].startswith(b"2"):
                counts[0] += 1
            else:
                counts[1] += 1
    finally:
        writer.close()


def post_load(port: int, api_key: str, bodies: list[bytes], seconds: float, connections: int) -> tuple[int, int, float]:
    """`connections` keep-alive clients posting `bodies` to /ingest for `seconds`:
    (2xx answers, other answers, elapsed seconds)."""
    counts = [0, 0]

    async def load() -> float:
        stop_at = time.monotonic() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(http_post_loop(port, bodies, {"Authorization": f"Bearer {api_key}"}, stop_at, counts)
                               for _ in range(connections)))
        return time.perf_counter() - start

    elapsed = asyncio.run(load())
    return counts[0], counts[1], elapsed


def make_logs(messages: list[tuple[str, str, str]], n: int, start: float, span_s: float, rng: random.Random) -> list[dict[str, Any]]:
    logs = []
    for i in range(n):
        level, service, message = messages[rng.randrange(len(messages))]
        logs.append({"timestamp": start + span_s * i / max(1, n), "level": level, "service": service,
                     "logger": f"{service}.main", "message": message, "attributes": {"seq": i, "host_id": i % 7}})
    return logs


def ingest_bodies(messages: list[tuple[str, str, str]], rng: random.Random, count: int = 50) -> list[bytes]:
    """`count` /ingest bodies of 100 logs each, stamped within the last minute."""
    return [orjson.dumps({"logs": make_logs(messages, 100, time.time() - 60, 60, rng)}) for _ in range(count)]


def sdk_bodies(messages: list[tuple[str, str, str]], rng: random.Random, count: int) -> list[bytes]:
    """`count` /ingest bodies of 100 logs each as the SDK sends them: a batch id, the SDK's
    name, and on each log a process id, thread, host and release, an exception on one in ten."""
    bodies = []
    for _ in range(count):
        logs = make_logs(messages, 100, time.time() - 60, 60, rng)
        for i, log in enumerate(logs):
            log.update(process_id=4242, thread_name="MainThread", host="web-1", release="1.4.2")
            if i % 10 == 0:
                log["exception"] = {"type": "ValueError", "value": "bad input",
                                    "traceback": "Traceback (most recent call last):\n  File \"app.py\", line 3\n" * 3}
        bodies.append(orjson.dumps({"batch_id": f"{rng.getrandbits(64):x}", "sdk": {"name": "sentry-logger"}, "logs": logs}))
    return bodies


@contextmanager
def ingest_server(kind: str, root: Path = ROOT) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    """A fresh database of `kind` and a server (the code of `root`) on it, with an app:
    (the server's process, its port, the app's API key)."""
    with database(kind) as url, tempfile.TemporaryDirectory() as data_dir:
        env = server_env(url, data_dir, free_port())
        key, _ = provision(env, root)
        with server(env, root) as proc:
            yield proc, int(env["PORT"]), key

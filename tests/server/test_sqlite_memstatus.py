"""server._sqlite_memstatus: importing the server turns SQLite's memory statistics off, in the
SQLite library Python's sqlite3 uses, when nothing imported sqlite3 before it."""

from __future__ import annotations

import subprocess
import sys

_MEMORY_USED = """
import ctypes, sqlite3, _sqlite3
used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
used.restype = ctypes.c_int64
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (a)")
conn.executemany("INSERT INTO t VALUES (?)", [("x" * 100,)] * 1000)
assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_server_turns_them_off_before_sqlite_starts() -> None:
    out = _run("import server, server._sqlite_memstatus as m\n" + _MEMORY_USED + "print(m.MEMSTATUS_OFF, used())")
    assert out == "True 0"  # SQLite counts nothing


def test_sqlite_keeps_its_default_when_it_started_first() -> None:
    out = _run("import sqlite3\nimport server, server._sqlite_memstatus as m\n" + _MEMORY_USED + "print(m.MEMSTATUS_OFF, used())")
    off, used = out.split()
    assert off == "False" and int(used) > 0  # left alone: SQLite would refuse the change now

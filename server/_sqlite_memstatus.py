"""Turn off SQLite's memory statistics for this process, before Python's sqlite3 starts SQLite.

With them on (SQLite's default), every allocation SQLite makes takes a process-wide mutex to
count it, and binding a text value allocates: ~25% of the cost of binding a log row's values
(bench/sqlite_bind_cost.py), which Python's sqlite3 does holding the GIL, the resource that
bounds ingest on SQLite (docs/benchmarks.md, "SQLite: where the GIL goes"). SQLite's own
recommended build options turn them off (SQLITE_DEFAULT_MEMSTATUS=0); nothing here reads them.

Python gives no access to `sqlite3_config`, which works only before SQLite is initialised, and
importing `_sqlite3` initialises it. So this loads `_sqlite3`'s shared object with ctypes
without initialising the module (dlopen; the import later gets the same object) and calls the
`sqlite3_config` that object resolves to: the very library Python's sqlite3 uses. Anything
unusual (sqlite3 already imported, a build without the symbol) leaves the default in place.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys

__all__ = ["MEMSTATUS_OFF", "turn_off_memstatus"]

_SQLITE_CONFIG_MEMSTATUS = 9
_SQLITE_OK = 0
MEMSTATUS_OFF: bool = False  # whether this process turned them off


def turn_off_memstatus() -> bool:
    """Turn SQLite's memory statistics off if SQLite has not started yet; whether it did."""
    global MEMSTATUS_OFF
    if "_sqlite3" in sys.modules:
        return MEMSTATUS_OFF
    try:
        spec = importlib.util.find_spec("_sqlite3")
        if spec is None or not spec.origin:
            return False
        config = ctypes.CDLL(spec.origin).sqlite3_config
    except (OSError, AttributeError, ImportError, ValueError):
        return False
    config.restype = ctypes.c_int
    MEMSTATUS_OFF = config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == _SQLITE_OK
    return MEMSTATUS_OFF

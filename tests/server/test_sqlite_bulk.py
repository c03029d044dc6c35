from __future__ import annotations

import sqlite3

from server._sqlite_bulk import execute_rows


def _rows_per_insert(conn: sqlite3.Connection) -> list[int]:
    """Each INSERT's number of rows, as they run (the traced SQL has the values bound in)."""
    sizes: list[int] = []
    conn.set_trace_callback(lambda sql: sizes.append(sql.count("), (") + 1) if sql.startswith("INSERT") else None)
    return sizes


def test_rows_go_in_order_with_the_last_rowid_in_few_statement_texts() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c)")
    sizes = _rows_per_insert(conn)
    total = 0
    for n in [*range(1, 40), 100, 300, 1023, 1024, 1025, 2049, 5000, 6400]:
        last = execute_rows(conn, "INSERT INTO t (a, b, c)", [(total + i, f"x{total + i}", None) for i in range(n)])
        total += n
        assert last == total
    assert [r[0] for r in conn.execute("SELECT a FROM t ORDER BY id")] == list(range(total))
    # one statement text per power of two up to 1,024 rows: sqlite3 keeps 128 compiled statements
    assert sum(sizes) == total and set(sizes) == {2**k for k in range(11)}
    assert execute_rows(conn, "INSERT INTO t (a, b, c)", []) is None


def test_the_variable_limit_caps_the_rows_per_statement() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b)")
    sizes = _rows_per_insert(conn)
    execute_rows(conn, "INSERT INTO t (a, b)", [(i, i) for i in range(11)], max_variables=8)
    assert sizes == [4, 4, 2, 1] and conn.execute("SELECT COUNT(*) FROM t").fetchone() == (11,)

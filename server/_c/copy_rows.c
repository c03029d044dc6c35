/* server._speedups: the PostgreSQL writer's COPY stream.
 *
 * copy_rows(batches, first_id, kinds, message_column, word_text) -> bytes
 *     A whole PostgreSQL binary COPY stream (header, one tuple per row, trailer) for
 *     `COPY ... FROM STDIN (FORMAT binary)` of the log writer's rows (server._pg_writer).
 *     batches: a list of (rows, fields) pairs: rows a list of tuples, fields None or a dict of
 *     tuples by index in rows. Each row's tuple is: the id (first_id, then one more each row, in
 *     place of the row's first value), the row's other values, the row's fields (NULLs when
 *     it has none), then the words text of the row's message (its message_column): NULL when
 *     the message is ASCII, else word_text(message). kinds: one letter per column, 'q'
 *     bigint, 'h' smallint, 't' text, 'j' jsonb (the text of a JSON value); None is NULL in
 *     any column. What asyncpg's copy_records_to_table sends for the same records made as
 *     lists (server._pg_writer.copy_records; tests/server/test_native.py checks both store the
 *     same rows), for a sixth of the CPU of making those lists and having asyncpg encode them
 *     (bench/pg_copy_encode.py; docs/benchmarks.md, "PostgreSQL: the COPY data in C"). A value of the wrong type raises TypeError and an
 *     int out of its column's range OverflowError, naming the row and column; a string UTF-8
 *     cannot hold (a lone surrogate) raises UnicodeEncodeError, as asyncpg's encoder does.
 */
#include "speedups.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} Out;

static int reserve(Out *o, Py_ssize_t need) {
    if (o->len + need <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + need) {
        if (cap > PY_SSIZE_T_MAX / 2) { PyErr_NoMemory(); return -1; }
        cap *= 2;
    }
    char *buf = PyMem_Realloc(o->buf, (size_t)cap);
    if (buf == NULL) { PyErr_NoMemory(); return -1; }
    o->buf = buf;
    o->cap = cap;
    return 0;
}

/* Network byte order, as COPY's binary format has every integer. */
static inline void put16(char *p, uint16_t v) { p[0] = (char)(v >> 8); p[1] = (char)v; }
static inline void put32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v;
}
static inline void put64(char *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }

static int put_null(Out *o) {
    if (reserve(o, 4)) return -1;
    put32(o->buf + o->len, 0xFFFFFFFFu);
    o->len += 4;
    return 0;
}

static int put_value(Out *o, char kind, PyObject *v, Py_ssize_t row, Py_ssize_t column) {
    if (v == Py_None) return put_null(o);  /* a field length of -1 */
    if (kind == 'q' || kind == 'h') {
        if (!PyLong_Check(v)) {
            PyErr_Format(PyExc_TypeError, "row %zd, column %zd: an int expected, not %.80s",
                         row, column, Py_TYPE(v)->tp_name);
            return -1;
        }
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return -1;
        if (overflow || (kind == 'h' && (x < INT16_MIN || x > INT16_MAX))) {
            PyErr_Format(PyExc_OverflowError, "row %zd, column %zd: %S is out of the column's range",
                         row, column, v);
            return -1;
        }
        if (reserve(o, 12)) return -1;
        if (kind == 'q') {
            put32(o->buf + o->len, 8);
            put64(o->buf + o->len + 4, (uint64_t)x);
            o->len += 12;
        } else {
            put32(o->buf + o->len, 2);
            put16(o->buf + o->len + 4, (uint16_t)x);
            o->len += 6;
        }
        return 0;
    }
    if (kind != 't' && kind != 'j') {
        PyErr_Format(PyExc_ValueError, "column %zd: unknown kind %c", column, kind);
        return -1;
    }
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "row %zd, column %zd: a str expected, not %.80s",
                     row, column, Py_TYPE(v)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) return -1;  /* UnicodeEncodeError: a lone surrogate, which UTF-8 cannot hold */
    Py_ssize_t version = kind == 'j';  /* jsonb's binary form: version 1, then the JSON text */
    if (n + version > INT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "row %zd, column %zd: %zd bytes, more than a field holds",
                     row, column, n);
        return -1;
    }
    if (reserve(o, 4 + version + n)) return -1;
    put32(o->buf + o->len, (uint32_t)(n + version));
    o->len += 4;
    if (version) o->buf[o->len++] = 1;
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

static const char HEADER[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";  /* signature, flags, no extension */

static int put_row(Out *o, const char *kinds, Py_ssize_t columns, long long id, PyObject *row, PyObject *fields,
                   Py_ssize_t message_column, PyObject *word_text, Py_ssize_t at) {
    Py_ssize_t n = PyTuple_GET_SIZE(row), extra = columns - n - 1;
    if (extra < 0 || message_column >= n) {
        PyErr_Format(PyExc_ValueError, "row %zd: %zd values, %zd columns", at, n, columns);
        return -1;
    }
    if (fields != NULL && (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != extra)) {
        PyErr_Format(PyExc_ValueError, "row %zd: its fields must be a tuple of %zd values", at, extra);
        return -1;
    }
    if (reserve(o, 14)) return -1;
    put16(o->buf + o->len, (uint16_t)columns);
    put32(o->buf + o->len + 2, 8);
    put64(o->buf + o->len + 6, (uint64_t)id);
    o->len += 14;
    PyObject **items = ((PyTupleObject *)row)->ob_item;
    for (Py_ssize_t c = 1; c < n; c++)
        if (put_value(o, kinds[c], items[c], at, c)) return -1;
    for (Py_ssize_t c = 0; c < extra; c++)
        if (fields == NULL ? put_null(o) : put_value(o, kinds[n + c], PyTuple_GET_ITEM(fields, c), at, n + c)) return -1;
    PyObject *message = items[message_column];
    if (!PyUnicode_Check(message) || PyUnicode_IS_ASCII(message)) return put_null(o);
    PyObject *words = PyObject_CallOneArg(word_text, message);
    if (words == NULL) return -1;
    int failed = put_value(o, kinds[columns - 1], words, at, columns - 1);
    Py_DECREF(words);
    return failed;
}

PyObject *speedups_copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5 || !PyList_Check(args[0]) || !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "copy_rows(batches: list, first_id: int, kinds: str, message_column: int, word_text)");
        return NULL;
    }
    PyObject *batches = args[0], *word_text = args[4];
    long long id = PyLong_AsLongLong(args[1]);
    Py_ssize_t message_column = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t columns;
    const char *kinds = PyUnicode_AsUTF8AndSize(args[2], &columns);
    if (kinds == NULL) return NULL;
    if (columns < 2 || columns > INT16_MAX || kinds[0] != 'q' || message_column < 1) {
        PyErr_SetString(PyExc_ValueError, "kinds: one letter per column, 2 to 32767, the first 'q' (the id); "
                                          "message_column: 1 or more");
        return NULL;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        if (!strchr("qhtj", kinds[c]) || kinds[c] == 0) {
            PyErr_Format(PyExc_ValueError, "column %zd: unknown kind %c", c, kinds[c]);
            return NULL;
        }
    }
    Out o = {NULL, 0, 0};
    if (reserve(&o, (Py_ssize_t)sizeof HEADER)) return NULL;
    memcpy(o.buf, HEADER, sizeof HEADER);
    o.len = (Py_ssize_t)sizeof HEADER;
    /* References are taken on what is read while word_text (Python code) may run. */
    Py_INCREF(batches);
    Py_ssize_t at = 0;
    for (Py_ssize_t b = 0; b < PyList_GET_SIZE(batches); b++) {
        PyObject *batch = Py_NewRef(PyList_GET_ITEM(batches, b)), *rows, *fields;
        if (!PyTuple_Check(batch) || PyTuple_GET_SIZE(batch) != 2 || !PyList_Check(rows = PyTuple_GET_ITEM(batch, 0))
            || ((fields = PyTuple_GET_ITEM(batch, 1)) != Py_None && !PyDict_Check(fields))) {
            PyErr_Format(PyExc_TypeError, "batch %zd: a (rows: list, fields: dict | None) pair expected", b);
            Py_DECREF(batch);
            goto fail;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++, at++) {
            PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i)), *these = NULL, *key = NULL;
            int failed = !PyTuple_Check(row);
            if (failed) {
                PyErr_Format(PyExc_TypeError, "row %zd: a tuple expected, not %.80s", at, Py_TYPE(row)->tp_name);
            } else if (fields != Py_None) {
                failed = (key = PyLong_FromSsize_t(i)) == NULL;
                these = failed ? NULL : PyDict_GetItemWithError(fields, key);  /* borrowed */
                failed = failed || (these == NULL && PyErr_Occurred());
                Py_XINCREF(these);
            }
            if (!failed)
                failed = put_row(&o, kinds, columns, id + at, row, these, message_column, word_text, at) != 0;
            Py_XDECREF(key);
            Py_XDECREF(these);
            Py_DECREF(row);
            if (failed) {
                Py_DECREF(batch);
                goto fail;
            }
        }
        Py_DECREF(batch);
    }
    Py_DECREF(batches);
    if (reserve(&o, 2)) goto fail_buffer;
    put16(o.buf + o.len, 0xFFFF);  /* the trailer: a field count of -1 */
    o.len += 2;
    PyObject *data = PyBytes_FromStringAndSize(o.buf, o.len);
    PyMem_Free(o.buf);
    return data;
fail:
    Py_DECREF(batches);
fail_buffer:
    PyMem_Free(o.buf);
    return NULL;
}

/* server._speedups: the parts of PostgreSQL ingest that cost Python the most per log, in C.
 *
 * Optional: built by `pip install` when a C compiler is there (pyproject.toml, ext-modules);
 * without it the server uses asyncpg's own encoder (server.native says which is in use).
 *
 * copy_data(records, kinds) -> bytes
 *     A whole PostgreSQL binary COPY stream (header, one tuple per record, trailer) for
 *     `COPY ... FROM STDIN (FORMAT binary)`. records: a list of lists or tuples, each with one
 *     value per column; kinds: one letter per column, 'q' bigint, 'h' smallint, 't' text,
 *     'j' jsonb (the text of a JSON value); None is NULL in any column. What asyncpg's
 *     copy_records_to_table sends for the same records (tests/server/test_native.py checks
 *     both store the same rows), for less than half the CPU: 0.9-1.2 -> 0.4-0.5 us a log with
 *     the protocol's own work, 0.24 of it this encoding, all of it holding the GIL
 *     (bench/pg_copy_encode.py; docs/benchmarks.md, "PostgreSQL: the COPY data in C").
 *     A value of the wrong type raises TypeError and an int out of its column's range
 *     OverflowError, naming the record and column; a string UTF-8 cannot hold (a lone
 *     surrogate) raises UnicodeEncodeError, as asyncpg's encoder does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

static int put_value(Out *o, char kind, PyObject *v, Py_ssize_t record, Py_ssize_t column) {
    if (v == Py_None) {  /* a field length of -1 */
        if (reserve(o, 4)) return -1;
        put32(o->buf + o->len, 0xFFFFFFFFu);
        o->len += 4;
        return 0;
    }
    if (kind == 'q' || kind == 'h') {
        if (!PyLong_Check(v)) {
            PyErr_Format(PyExc_TypeError, "record %zd, column %zd: an int expected, not %.80s",
                         record, column, Py_TYPE(v)->tp_name);
            return -1;
        }
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return -1;
        if (overflow || (kind == 'h' && (x < INT16_MIN || x > INT16_MAX))) {
            PyErr_Format(PyExc_OverflowError, "record %zd, column %zd: %S is out of the column's range",
                         record, column, v);
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
        PyErr_Format(PyExc_TypeError, "record %zd, column %zd: a str expected, not %.80s",
                     record, column, Py_TYPE(v)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) return -1;  /* UnicodeEncodeError: a lone surrogate, which UTF-8 cannot hold */
    Py_ssize_t version = kind == 'j';  /* jsonb's binary form: version 1, then the JSON text */
    if (n + version > INT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "record %zd, column %zd: %zd bytes, more than a field holds",
                     record, column, n);
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

static PyObject *copy_data(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "copy_data(records: list, kinds: str)");
        return NULL;
    }
    PyObject *records = args[0];
    Py_ssize_t columns;
    const char *kinds = PyUnicode_AsUTF8AndSize(args[1], &columns);
    if (kinds == NULL) return NULL;
    if (columns == 0 || columns > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "kinds: one letter per column, 1 to 32767 of them");
        return NULL;
    }
    Out o = {NULL, 0, 0};
    if (reserve(&o, (Py_ssize_t)sizeof HEADER)) return NULL;
    memcpy(o.buf, HEADER, sizeof HEADER);
    o.len = (Py_ssize_t)sizeof HEADER;
    /* The list may not change under us: nothing here runs Python code (no __index__, no
     * __str__: exact checks on int and str only), so no other thread gets the GIL. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        PyObject **items;
        Py_ssize_t n;
        if (PyList_Check(record)) {
            items = ((PyListObject *)record)->ob_item;
            n = PyList_GET_SIZE(record);
        } else if (PyTuple_Check(record)) {
            items = ((PyTupleObject *)record)->ob_item;
            n = PyTuple_GET_SIZE(record);
        } else {
            PyErr_Format(PyExc_TypeError, "record %zd: a list or tuple expected, not %.80s", i, Py_TYPE(record)->tp_name);
            goto fail;
        }
        if (n != columns) {
            PyErr_Format(PyExc_ValueError, "record %zd: %zd values for %zd columns", i, n, columns);
            goto fail;
        }
        if (reserve(&o, 2)) goto fail;
        put16(o.buf + o.len, (uint16_t)columns);
        o.len += 2;
        for (Py_ssize_t c = 0; c < columns; c++)
            if (put_value(&o, kinds[c], items[c], i, c)) goto fail;
    }
    if (reserve(&o, 2)) goto fail;
    put16(o.buf + o.len, 0xFFFF);  /* the trailer: a field count of -1 */
    o.len += 2;
    PyObject *data = PyBytes_FromStringAndSize(o.buf, o.len);
    PyMem_Free(o.buf);
    return data;
fail:
    PyMem_Free(o.buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"copy_data", (PyCFunction)(void (*)(void))copy_data, METH_FASTCALL,
     "copy_data(records, kinds) -> bytes: a PostgreSQL binary COPY stream of the records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "server._speedups", "Ingest's hot paths in C (see server.native).", 0, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModuleDef_Init(&module); }

/* server._speedups: the parts of PostgreSQL ingest that cost Python the most per log, in C.
 *
 * Optional: built by `pip install` when a C compiler is there (pyproject.toml, ext-modules);
 * without it the server does the same in Python (server.native says which is in use).
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
 *     any column. What asyncpg's copy_records_to_table sends for the same records
 *     (tests/server/test_native.py checks both store the same rows), for less than half the
 *     CPU, and without a list made per row first (bench/pg_copy_encode.py; docs/benchmarks.md,
 *     "PostgreSQL: the COPY data in C"). A value of the wrong type raises TypeError and an
 *     int out of its column's range OverflowError, naming the row and column; a string UTF-8
 *     cannot hold (a lone surrogate) raises UnicodeEncodeError, as asyncpg's encoder does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

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

static int put_value(Out *o, char kind, PyObject *v, Py_ssize_t row, Py_ssize_t column) {
    if (v == Py_None) {  /* a field length of -1 */
        if (reserve(o, 4)) return -1;
        put32(o->buf + o->len, 0xFFFFFFFFu);
        o->len += 4;
        return 0;
    }
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

static int put_null(Out *o) {
    if (reserve(o, 4)) return -1;
    put32(o->buf + o->len, 0xFFFFFFFFu);
    o->len += 4;
    return 0;
}

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

static PyObject *copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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

/* ---- log_rows -------------------------------------------------------------------------
 *
 * set_log_type(FastLog): the struct type of server.ingest_fast whose fields log_rows reads
 *     (by their slots' offsets, found once here from the type's member descriptors).
 * log_rows(logs, app_id, default_environment, received_at, latest, max_message_chars,
 *          max_attributes_bytes, levels, dumps, slow) -> list of row tuples, or None
 *     server.ingest_fast.fast_rows for the logs most shippers send: a float timestamp in
 *     [0, EPOCH_S_MAX) seconds, a level spelled as a key of `levels` (LEVELS), a message of at
 *     most max_message_chars characters (a quarter of the byte limit: 4 bytes a character at
 *     most), no exception, and attributes absent, empty, or flat (their `dumps` (orjson.dumps)
 *     with one brace, no bracket, within max_attributes_bytes, no "duration_ms" key). Every other
 *     log is given to `slow(log, index)` (server.ingest_fast._log_row: the same checks in Python),
 *     whose row is taken, or whose None makes the answer None (the request goes the general way).
 *     A ts past `latest` also answers None; `dumps` raising TypeError (an int past 64 bits) too.
 *     Rows are as server.ingest_validate.validate_record makes them (tests/server/test_ingest_fast.py
 *     checks both implementations against the general path on generated bodies). 1.0 -> 0.3 us a
 *     log (bench/ingest_validate_cost.py).
 */

enum {
    F_TIMESTAMP, F_LEVEL, F_MESSAGE, F_SERVICE, F_LOGGER, F_ENVIRONMENT, F_RELEASE, F_HOST,
    F_THREAD_NAME, F_TRACE_ID, F_REQUEST_ID, F_PROCESS_ID, F_ATTRIBUTES, F_EXCEPTION, N_FIELDS
};
static const char *const FIELD_NAMES[N_FIELDS] = {
    "timestamp", "level", "message", "service", "logger", "environment", "release", "host",
    "thread_name", "trace_id", "request_id", "process_id", "attributes", "exception",
};
static PyTypeObject *log_type;
static Py_ssize_t field_offset[N_FIELDS];
static PyObject *empty_str, *duration_ms_str;
static const double EPOCH_S_MAX = 1e12;  /* server.ingest_validate.EPOCH_S_MAX */

static PyObject *set_log_type(PyObject *module, PyObject *type) {
    (void)module;
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "set_log_type(FastLog): a type");
        return NULL;
    }
    Py_ssize_t offsets[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *descr = PyDict_GetItemString(((PyTypeObject *)type)->tp_dict, FIELD_NAMES[i]);  /* borrowed */
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "set_log_type: %s is not a slot of %.80s", FIELD_NAMES[i],
                         ((PyTypeObject *)type)->tp_name);
            return NULL;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX && member->type != T_OBJECT) {
            PyErr_Format(PyExc_TypeError, "set_log_type: %s does not hold an object", FIELD_NAMES[i]);
            return NULL;
        }
        offsets[i] = member->offset;
    }
    memcpy(field_offset, offsets, sizeof offsets);
    Py_XSETREF(log_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_NONE;
}

static inline PyObject *field(PyObject *log, int i) {  /* borrowed; NULL when unset */
    return *(PyObject **)((char *)log + field_offset[i]);
}

/* `value or ""` (`value or fallback`) for a str-or-None field: a new reference. */
static inline PyObject *or_default(PyObject *value, PyObject *fallback) {
    return Py_NewRef(value != NULL && value != Py_None && PyUnicode_GET_LENGTH(value) > 0 ? value : fallback);
}

/* The row of one log when it is of the common kind: a new tuple; NULL without an error set
 * when it is not (then `slow` decides); NULL with an error set on an error; Py_None (new
 * reference) when the whole body is to go the general way. */
static PyObject *common_row(PyObject *log, PyObject *app_id, PyObject *default_environment, PyObject *received_at,
                            long long latest, Py_ssize_t max_message_chars, Py_ssize_t max_attributes,
                            PyObject *levels, PyObject *dumps) {
    PyObject *ts_value = field(log, F_TIMESTAMP), *level = field(log, F_LEVEL), *message = field(log, F_MESSAGE);
    PyObject *attributes = field(log, F_ATTRIBUTES), *exception = field(log, F_EXCEPTION);
    for (int i = 0; i < N_FIELDS; i++)
        if (field(log, i) == NULL) return NULL;
    if (!PyFloat_CheckExact(ts_value) || !PyUnicode_CheckExact(level) || !PyUnicode_CheckExact(message)
        || exception != Py_None || PyUnicode_GET_LENGTH(message) > max_message_chars)
        return NULL;
    double seconds = PyFloat_AS_DOUBLE(ts_value);
    if (!(seconds >= 0.0 && seconds < EPOCH_S_MAX)) return NULL;
    /* round(seconds * 1_000_000): to the nearest integer, halves to even (the default rounding mode) */
    long long ts = (long long)nearbyint(seconds * 1000000.0);
    if (ts > latest) return Py_NewRef(Py_None);
    PyObject *found = PyDict_GetItemWithError(levels, level);  /* borrowed: (number, name) */
    if (found == NULL) return NULL;  /* not a key: slow (or an error, set) */
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2) {
        PyErr_SetString(PyExc_TypeError, "log_rows: levels must map names to (number, name)");
        return NULL;
    }
    PyObject *attributes_json;
    if (attributes == Py_None || (PyDict_CheckExact(attributes) && PyDict_GET_SIZE(attributes) == 0)) {
        attributes_json = Py_NewRef(Py_None);
    } else {
        if (!PyDict_CheckExact(attributes)) return NULL;
        int request = PyDict_Contains(attributes, duration_ms_str);
        if (request != 0) return NULL;  /* a request record: slow (-1: an error, set) */
        PyObject *encoded = PyObject_CallOneArg(dumps, attributes);
        if (encoded == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
            PyErr_Clear();  /* an int past 64 bits: the general path's JSON takes it as a float */
            return Py_NewRef(Py_None);
        }
        if (!PyBytes_Check(encoded)) {
            Py_DECREF(encoded);
            PyErr_SetString(PyExc_TypeError, "log_rows: dumps must return bytes");
            return NULL;
        }
        const char *bytes = PyBytes_AS_STRING(encoded);
        Py_ssize_t n = PyBytes_GET_SIZE(encoded);
        Py_ssize_t braces = 0;
        int flat = n <= max_attributes && memchr(bytes, '[', (size_t)n) == NULL;
        for (Py_ssize_t i = 0; flat && i < n; i++) braces += bytes[i] == '{';
        if (!flat || braces != 1) {
            Py_DECREF(encoded);
            return NULL;
        }
        attributes_json = PyUnicode_DecodeUTF8(bytes, n, "strict");
        Py_DECREF(encoded);
        if (attributes_json == NULL) return NULL;
    }
    PyObject *ts_obj = PyLong_FromLongLong(ts);
    PyObject *row = ts_obj == NULL ? NULL : PyTuple_New(18);
    if (row == NULL) {
        Py_XDECREF(ts_obj);
        Py_DECREF(attributes_json);
        return NULL;
    }
    PyObject *process_id = field(log, F_PROCESS_ID);
    PyObject **item = ((PyTupleObject *)row)->ob_item;
    item[0] = Py_NewRef(Py_None);
    item[1] = Py_NewRef(app_id);
    item[2] = ts_obj;
    item[3] = Py_NewRef(received_at);
    item[4] = Py_NewRef(PyTuple_GET_ITEM(found, 0));
    item[5] = Py_NewRef(PyTuple_GET_ITEM(found, 1));
    item[6] = or_default(field(log, F_SERVICE), empty_str);
    item[7] = or_default(field(log, F_LOGGER), empty_str);
    item[8] = Py_NewRef(message);
    item[9] = attributes_json;
    item[10] = Py_NewRef(Py_None);
    item[11] = or_default(field(log, F_ENVIRONMENT), default_environment);
    item[12] = or_default(field(log, F_RELEASE), empty_str);
    item[13] = or_default(field(log, F_HOST), empty_str);
    item[14] = Py_NewRef(process_id);
    item[15] = or_default(field(log, F_THREAD_NAME), empty_str);
    item[16] = or_default(field(log, F_TRACE_ID), empty_str);
    item[17] = or_default(field(log, F_REQUEST_ID), empty_str);
    return row;
}

static PyObject *log_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "log_rows(logs, app_id, default_environment, received_at, latest, "
                                         "max_message_chars, max_attributes_bytes, levels, dumps, slow)");
        return NULL;
    }
    PyObject *logs = args[0], *app_id = args[1], *default_environment = args[2], *received_at = args[3];
    PyObject *levels = args[7], *dumps = args[8], *slow = args[9];
    long long latest = PyLong_AsLongLong(args[4]);
    Py_ssize_t max_message_chars = PyLong_AsSsize_t(args[5]), max_attributes = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred()) return NULL;
    if (log_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "log_rows: set_log_type(FastLog) first");
        return NULL;
    }
    if (!PyList_Check(logs) || !PyDict_Check(levels) || !PyUnicode_Check(default_environment)) {
        PyErr_SetString(PyExc_TypeError, "log_rows: logs must be a list, levels a dict, default_environment a str");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(logs);
    PyObject *rows = PyList_New(n);
    if (rows == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *log = Py_NewRef(PyList_GET_ITEM(logs, i));  /* slow runs Python code: keep it alive */
        PyObject *row = NULL;
        if (Py_IS_TYPE(log, log_type))
            row = common_row(log, app_id, default_environment, received_at, latest, max_message_chars, max_attributes,
                             levels, dumps);
        if (row == NULL && !PyErr_Occurred()) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index != NULL) {
                PyObject *call_args[2] = {log, index};
                row = PyObject_Vectorcall(slow, call_args, 2, NULL);
                Py_DECREF(index);
            }
        }
        Py_DECREF(log);
        if (row == NULL) goto fail;
        if (row == Py_None) {
            Py_DECREF(row);
            Py_DECREF(rows);
            Py_RETURN_NONE;
        }
        PyList_SET_ITEM(rows, i, row);
        if (PyList_GET_SIZE(logs) != n) {
            PyErr_SetString(PyExc_RuntimeError, "log_rows: the list of logs changed");
            goto fail;
        }
    }
    return rows;
fail:
    Py_DECREF(rows);
    return NULL;
}

/* ---- WordSet ----------------------------------------------------------------------------
 *
 * WordSet(split) -> a set of words, kept as UTF-8 bytes in one buffer and an open-addressing
 * table (no Python object per word): the words of an app's messages for its next word block
 * (server._pg_writer). A Python set of str (server.fulltext.PyWordSet) costs ~1 us a log (10
 * words) on the event loop, this 0.36 (bench/word_set_cost.py; docs/benchmarks.md, "PostgreSQL:
 * word blocks in C").
 *
 * add_texts(texts): adds the words of each text. An ASCII text is split here, as
 *     server.fulltext.split_words splits one (lower-cased runs of letters and digits); any other
 *     is given to `split` (server.fulltext.split_words), whose words are added.
 * update(other): adds another WordSet's words. copy(): a new WordSet with the same words.
 * text(max_chars): the words of at most max_chars characters, each once, joined by one space
 *     (in no particular order). len(): how many words.
 *
 * Words are hashed as Python hashes str and bytes (SipHash, keyed per process), so messages
 * made to collide cannot turn the table's probes quadratic. Its size is bounded by what the
 * writer's queue holds (INGEST_QUEUE_MAX_RECORDS): the writer takes the set with each commit.
 */

#if PY_VERSION_HEX >= 0x030E0000
#define HASH_BYTES(p, n) Py_HashBuffer((p), (n))
#else
#define HASH_BYTES(p, n) _Py_HashBytes((p), (n))
#endif

typedef struct {
    Py_hash_t hash;
    size_t offset, len;  /* len 0: an empty slot (a word is never empty) */
} Slot;

typedef struct {
    PyObject_HEAD
    PyObject *split;
    char *words;  /* every word's bytes, one after the other */
    size_t words_len, words_cap;
    Slot *slots;
    size_t mask, used;  /* mask + 1 slots, a power of two, at most half used */
    int non_ascii;  /* a word is not ASCII: text() decodes UTF-8 */
    char *scratch;  /* a text lower-cased */
    size_t scratch_cap;
} WordSet;

static PyTypeObject WordSetType;

static int wordset_init_table(WordSet *ws, size_t size) {
    Slot *slots = PyMem_Calloc(size, sizeof(Slot));
    if (slots == NULL) { PyErr_NoMemory(); return -1; }
    PyMem_Free(ws->slots);
    ws->slots = slots;
    ws->mask = size - 1;
    ws->used = 0;
    return 0;
}

static void place(Slot *slots, size_t mask, Slot s) {
    size_t i = (size_t)s.hash & mask;
    while (slots[i].len) i = (i + 1) & mask;
    slots[i] = s;
}

static int grow_table(WordSet *ws) {
    size_t size = (ws->mask + 1) * 2;
    Slot *slots = PyMem_Calloc(size, sizeof(Slot));
    if (slots == NULL) { PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i <= ws->mask; i++)
        if (ws->slots[i].len) place(slots, size - 1, ws->slots[i]);
    PyMem_Free(ws->slots);
    ws->slots = slots;
    ws->mask = size - 1;
    return 0;
}

static int add_word(WordSet *ws, const char *w, size_t n) {
    Py_hash_t h = HASH_BYTES(w, (Py_ssize_t)n);
    size_t i = (size_t)h & ws->mask;
    for (; ws->slots[i].len; i = (i + 1) & ws->mask) {
        Slot *s = &ws->slots[i];
        if (s->hash == h && s->len == n && memcmp(ws->words + s->offset, w, n) == 0) return 0;
    }
    if (ws->words_len + n > ws->words_cap) {
        size_t cap = ws->words_cap ? ws->words_cap : 16384;
        while (cap < ws->words_len + n) cap *= 2;
        char *words = PyMem_Realloc(ws->words, cap);
        if (words == NULL) { PyErr_NoMemory(); return -1; }
        ws->words = words;
        ws->words_cap = cap;
    }
    memcpy(ws->words + ws->words_len, w, n);
    Slot s = {h, ws->words_len, n};
    ws->words_len += n;
    ws->slots[i] = s;
    if (++ws->used * 2 > ws->mask + 1 && grow_table(ws)) return -1;
    return 0;
}

/* ASCII letters and digits lower-cased; 0 for every other byte (a separator). */
static unsigned char WORD_BYTE[128];

static int add_ascii_text(WordSet *ws, PyObject *text) {
    size_t n = (size_t)PyUnicode_GET_LENGTH(text);
    if (n > ws->scratch_cap) {
        char *scratch = PyMem_Realloc(ws->scratch, n);
        if (scratch == NULL) { PyErr_NoMemory(); return -1; }
        ws->scratch = scratch;
        ws->scratch_cap = n;
    }
    const unsigned char *in = PyUnicode_1BYTE_DATA(text);
    char *b = ws->scratch;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = WORD_BYTE[in[i]];  /* in[i] < 128: an ASCII text */
        b[i] = (char)c;
        if (c == 0) {
            if (i > start && add_word(ws, b + start, i - start)) return -1;
            start = i + 1;
        }
    }
    if (n > start && add_word(ws, b + start, n - start)) return -1;
    return 0;
}

static int add_split_text(WordSet *ws, PyObject *text) {
    PyObject *words = PyObject_CallOneArg(ws->split, text);
    if (words == NULL) return -1;
    if (!PyList_Check(words)) {
        Py_DECREF(words);
        PyErr_SetString(PyExc_TypeError, "WordSet: split must return a list of str");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        PyObject *word = PyList_GET_ITEM(words, i);
        Py_ssize_t n;
        const char *w = PyUnicode_Check(word) ? PyUnicode_AsUTF8AndSize(word, &n) : NULL;
        if (w == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "WordSet: split must return a list of str");
            Py_DECREF(words);
            return -1;
        }
        if (n == 0) continue;
        if (!PyUnicode_IS_ASCII(word)) ws->non_ascii = 1;
        if (add_word(ws, w, (size_t)n)) { Py_DECREF(words); return -1; }
    }
    Py_DECREF(words);
    return 0;
}

static PyObject *wordset_add_texts(WordSet *ws, PyObject *texts) {
    PyObject *seq = PySequence_Fast(texts, "add_texts(texts): a list of str");
    if (seq == NULL) return NULL;
    /* A list of the texts is held (seq), and add_split_text may run Python code (split):
     * take each item's reference before that can happen. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(text);
        int failed;
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "add_texts: item %zd is %.80s, not str", i, Py_TYPE(text)->tp_name);
            failed = 1;
        } else {
            failed = PyUnicode_IS_ASCII(text) ? add_ascii_text(ws, text) : add_split_text(ws, text);
        }
        Py_DECREF(text);
        if (failed) { Py_DECREF(seq); return NULL; }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *wordset_update(WordSet *ws, PyObject *other) {
    if (!PyObject_TypeCheck(other, &WordSetType)) {
        PyErr_SetString(PyExc_TypeError, "update(other): a WordSet");
        return NULL;
    }
    WordSet *o = (WordSet *)other;
    if (o == ws) Py_RETURN_NONE;
    for (size_t i = 0; i <= o->mask; i++)
        if (o->slots[i].len && add_word(ws, o->words + o->slots[i].offset, o->slots[i].len)) return NULL;
    ws->non_ascii |= o->non_ascii;
    Py_RETURN_NONE;
}

static PyObject *wordset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);

static PyObject *wordset_copy(WordSet *ws, PyObject *Py_UNUSED(ignored)) {
    PyObject *args = PyTuple_Pack(1, ws->split);
    if (args == NULL) return NULL;
    WordSet *c = (WordSet *)wordset_new(Py_TYPE(ws), args, NULL);
    Py_DECREF(args);
    if (c == NULL) return NULL;
    PyObject *done = wordset_update(c, (PyObject *)ws);
    if (done == NULL) { Py_DECREF(c); return NULL; }
    Py_DECREF(done);
    return (PyObject *)c;
}

static size_t utf8_chars(const char *w, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)w[i] & 0xC0) != 0x80;
    return chars;
}

static PyObject *wordset_text(WordSet *ws, PyObject *arg) {
    Py_ssize_t max_chars = PyLong_AsSsize_t(arg);
    if (max_chars == -1 && PyErr_Occurred()) return NULL;
    size_t total = 0;
    for (size_t i = 0; i <= ws->mask; i++) {
        Slot *s = &ws->slots[i];
        if (s->len) total += s->len + 1;
    }
    char *buf = PyMem_Malloc(total ? total : 1);
    if (buf == NULL) return PyErr_NoMemory();
    size_t len = 0;
    for (size_t i = 0; i <= ws->mask; i++) {
        Slot *s = &ws->slots[i];
        if (!s->len) continue;
        const char *w = ws->words + s->offset;
        if (s->len > (size_t)max_chars && (!ws->non_ascii || utf8_chars(w, s->len) > (size_t)max_chars)) continue;
        if (len) buf[len++] = ' ';
        memcpy(buf + len, w, s->len);
        len += s->len;
    }
    PyObject *text;
    if (ws->non_ascii) {
        text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "strict");
    } else {
        text = PyUnicode_New((Py_ssize_t)len, 127);
        if (text != NULL) memcpy(PyUnicode_1BYTE_DATA(text), buf, len);
    }
    PyMem_Free(buf);
    return text;
}

static Py_ssize_t wordset_len(WordSet *ws) { return (Py_ssize_t)ws->used; }

static PyObject *wordset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *split;
    static char *names[] = {"split", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:WordSet", names, &split)) return NULL;
    if (!PyCallable_Check(split)) {
        PyErr_SetString(PyExc_TypeError, "WordSet(split): split must be callable");
        return NULL;
    }
    WordSet *ws = (WordSet *)type->tp_alloc(type, 0);
    if (ws == NULL) return NULL;
    ws->split = Py_NewRef(split);
    if (wordset_init_table(ws, 1024)) { Py_DECREF(ws); return NULL; }
    return (PyObject *)ws;
}

static void wordset_dealloc(WordSet *ws) {
    PyObject_GC_UnTrack(ws);
    Py_CLEAR(ws->split);
    PyMem_Free(ws->words);
    PyMem_Free(ws->slots);
    PyMem_Free(ws->scratch);
    Py_TYPE(ws)->tp_free((PyObject *)ws);
}

static int wordset_traverse(WordSet *ws, visitproc visit, void *arg) {
    Py_VISIT(ws->split);
    return 0;
}

static int wordset_clear(WordSet *ws) {
    Py_CLEAR(ws->split);
    return 0;
}

static PyMethodDef wordset_methods[] = {
    {"add_texts", (PyCFunction)wordset_add_texts, METH_O, "Add the words of each text."},
    {"update", (PyCFunction)wordset_update, METH_O, "Add another WordSet's words."},
    {"copy", (PyCFunction)wordset_copy, METH_NOARGS, "A new WordSet with the same words."},
    {"text", (PyCFunction)wordset_text, METH_O, "The words of at most max_chars characters, joined by one space."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods wordset_as_sequence = {.sq_length = (lenfunc)wordset_len};

static PyTypeObject WordSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "server._speedups.WordSet",
    .tp_basicsize = sizeof(WordSet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "WordSet(split): the distinct words of texts (see server/_speedups.c).",
    .tp_new = wordset_new,
    .tp_dealloc = (destructor)wordset_dealloc,
    .tp_traverse = (traverseproc)wordset_traverse,
    .tp_clear = (inquiry)wordset_clear,
    .tp_methods = wordset_methods,
    .tp_as_sequence = &wordset_as_sequence,
};

static int add_types(PyObject *m) {
    if (empty_str == NULL && (empty_str = PyUnicode_InternFromString("")) == NULL) return -1;
    if (duration_ms_str == NULL && (duration_ms_str = PyUnicode_InternFromString("duration_ms")) == NULL) return -1;
    for (int c = 0; c < 128; c++)
        WORD_BYTE[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : c >= 'A' && c <= 'Z' ? c | 0x20 : 0);
    if (PyType_Ready(&WordSetType) < 0) return -1;
    return PyModule_AddObjectRef(m, "WordSet", (PyObject *)&WordSetType);
}

static PyModuleDef_Slot slots[] = {{Py_mod_exec, add_types}, {0, NULL}};

static PyMethodDef methods[] = {
    {"set_log_type", set_log_type, METH_O, "set_log_type(FastLog): the struct type log_rows reads."},
    {"log_rows", (PyCFunction)(void (*)(void))log_rows, METH_FASTCALL,
     "log_rows(logs, app_id, default_environment, received_at, latest, max_message_chars, max_attributes_bytes, "
     "levels, dumps, slow) -> list of rows, or None."},
    {"copy_rows", (PyCFunction)(void (*)(void))copy_rows, METH_FASTCALL,
     "copy_rows(batches, first_id, kinds, message_column, word_text) -> bytes: a PostgreSQL binary COPY stream."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "server._speedups", "Ingest's hot paths in C (see server.native).", 0, methods,
    slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModuleDef_Init(&module); }

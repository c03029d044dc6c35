/* server._speedups: ingest's rows for the logs most shippers send (server.ingest_fast).
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
#include "speedups.h"

#include <math.h>
#include <string.h>
#include <structmember.h>

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

PyObject *speedups_set_log_type(PyObject *module, PyObject *type) {
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

PyObject *speedups_log_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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

int speedups_log_rows_init(void) {
    if (empty_str == NULL && (empty_str = PyUnicode_InternFromString("")) == NULL) return -1;
    if (duration_ms_str == NULL && (duration_ms_str = PyUnicode_InternFromString("duration_ms")) == NULL) return -1;
    return 0;
}

/* server._speedups: the parts of ingest that cost Python the most per log, in C (server.native).
 *
 * Optional: built by `pip install` when a C compiler is there (setup.py);
 * without it the server does the same in Python, slower. copy_rows.c: PostgreSQL's COPY stream;
 * log_rows.c: the rows of the common logs (both databases); word_set.c: PostgreSQL's word sets.
 */
#include "speedups.h"

static int exec_module(PyObject *module) {
    if (speedups_log_rows_init() < 0) return -1;
    return speedups_word_set_add_type(module);
}

static PyModuleDef_Slot slots[] = {{Py_mod_exec, exec_module}, {0, NULL}};

static PyMethodDef methods[] = {
    {"set_log_type", speedups_set_log_type, METH_O, "set_log_type(FastLog): the struct type log_rows reads."},
    {"log_rows", (PyCFunction)(void (*)(void))speedups_log_rows, METH_FASTCALL,
     "log_rows(logs, app_id, default_environment, received_at, latest, max_message_chars, max_attributes_bytes, "
     "levels, dumps, slow) -> list of rows, or None."},
    {"copy_rows", (PyCFunction)(void (*)(void))speedups_copy_rows, METH_FASTCALL,
     "copy_rows(batches, first_id, kinds, message_column, word_text) -> bytes: a PostgreSQL binary COPY stream."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "server._speedups", "Ingest's hot paths in C (see server.native).", 0, methods,
    slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModuleDef_Init(&module); }

/* server._speedups, built from the C files beside this one (setup.py): what each file
 * defines for module.c, which makes the module. See each file for what its functions do. */
#ifndef SPEEDUPS_H
#define SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* copy_rows.c */
PyObject *speedups_copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* log_rows.c */
int speedups_log_rows_init(void);
PyObject *speedups_set_log_type(PyObject *module, PyObject *type);
PyObject *speedups_log_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* word_set.c */
int speedups_word_set_add_type(PyObject *module);

#endif

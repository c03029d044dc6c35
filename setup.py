"""The C speed-ups' build (server/_c/, the module server._speedups); the rest is pyproject.toml.

Optional: where no C compiler is found, the install goes on without them and the server does
the same work in Python, slower (server/native.py says which this process has).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "server._speedups",
    sources=["server/_c/module.c", "server/_c/copy_rows.c", "server/_c/log_rows.c", "server/_c/word_set.c"],
    depends=["server/_c/speedups.h"],
    optional=True,
)])

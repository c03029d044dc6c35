"""sentry-logger server: ingest, query API, accounts, API keys, sign-in and live tail."""

from server._sqlite_memstatus import turn_off_memstatus

turn_off_memstatus()  # first: only possible before anything imports sqlite3

__version__ = "0.1.0"

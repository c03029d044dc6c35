"""sentry-logger server: ingest, query API, accounts, API keys, sign-in and live tail."""

__version__ = "0.1.0"

"""A minimal app for the Docker example: logs a heartbeat and serves /."""

from __future__ import annotations

import logging

import sentry_logger

sentry_logger.init()  # SENTRY_API_KEY, SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_RELEASE from the environment

from fastapi import FastAPI

app = FastAPI()
app.add_middleware(sentry_logger.SentryLoggerMiddleware, exclude_paths=["/health"])


@app.get("/")
def index() -> dict[str, str]:
    logging.info("hello from the container")  # noqa: LOG015 - plain logging is all the SDK needs
    return {"hello": "world"}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}

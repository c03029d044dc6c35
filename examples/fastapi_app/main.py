"""The FastAPI app from the sentry-logger user journey.

Run it (with a sentry-logger server at SENTRY_DSN and a key from its dashboard):

    export SENTRY_API_KEY=sk_prod_...   SENTRY_DSN=http://127.0.0.1:8000
    uvicorn main:app --port 8001

then open http://127.0.0.1:8001/items/42 and http://127.0.0.1:8001/fail and
watch both appear in the dashboard, with the request records' durations.
"""

from __future__ import annotations

import logging

import sentry_logger

# 1. init() before the app exists: configuration errors stop the app right here,
#    while an unreachable server only produces one warning on stderr.
sentry_logger.init(service="fastapi-example")

from fastapi import FastAPI, HTTPException

app = FastAPI(title="sentry-logger FastAPI example")
# 2. One record per request (method, route, status_code, duration_ms), plus the
#    traceback of unhandled exceptions. Health checks are not worth a record.
app.add_middleware(sentry_logger.SentryLoggerMiddleware, exclude_paths=["/health"])

logger = logging.getLogger("shop")
ITEMS = {1: "keyboard", 42: "towel"}


@app.get("/")
def index() -> dict[str, str]:
    logging.info("index visited")  # noqa: LOG015 - the root logger works too (the user journey uses it)
    return {"hello": "world"}


@app.get("/items/{item_id}")
def read_item(item_id: int) -> dict[str, object]:
    # 3. Plain logging calls; `extra` fields become searchable attributes.
    logger.info("item viewed", extra={"item_id": item_id})
    if item_id not in ITEMS:
        logger.warning("unknown item requested", extra={"item_id": item_id})
        raise HTTPException(status_code=404, detail="no such item")
    return {"id": item_id, "name": ITEMS[item_id]}


@app.get("/fail")
def fail() -> None:
    raise RuntimeError("demo failure: the payment provider timed out")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}

"""ASGI and WSGI request middleware: one record per request, exceptions captured and re-raised."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import flask
import pytest
import sentry_logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from .conftest import Sink


def access(sink: Sink) -> list[dict[str, Any]]:
    return [e for e in sink.logs if e["logger"] == "http.access"]


def starlette_app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        logging.getLogger("shop").info("looking up %s", request.path_params["item_id"])
        return JSONResponse({"id": request.path_params["item_id"]})

    async def boom(request: Request) -> PlainTextResponse:
        raise KeyError("missing")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/items/{item_id}", item), Route("/boom", boom), Route("/health", health),
              Route("/static/app.js", health)]
    app = Starlette(routes=routes)
    app.add_middleware(sentry_logger.SentryLoggerMiddleware, exclude_paths=["/health", "/static/*"])
    return app


def test_asgi_logs_one_record_per_request_with_route_status_and_duration(
    sink: Sink, init_sdk: Callable[..., Any]
) -> None:
    init_sdk()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with TestClient(starlette_app()) as client:
        assert client.get("/items/9", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/nowhere").status_code == 404
    assert sentry_logger.flush(5)
    app_record = next(e for e in sink.logs if e["logger"] == "shop")
    first, missing = access(sink)
    assert first["message"].startswith("GET /items/9 200 in ")
    assert first["attributes"]["route"] == "/items/{item_id}"
    assert first["attributes"]["method"] == "GET" and first["attributes"]["status_code"] == 200
    assert isinstance(first["attributes"]["duration_ms"], float)
    assert first["level"] == "INFO"
    assert first["trace_id"] == app_record["trace_id"] == trace
    assert first["request_id"] == app_record["request_id"] and len(first["request_id"]) == 32
    assert missing["attributes"]["status_code"] == 404 and "route" not in missing["attributes"]


def test_asgi_unhandled_exception_is_logged_with_traceback_and_reraised(
    sink: Sink, init_sdk: Callable[..., Any]
) -> None:
    init_sdk()
    with TestClient(starlette_app()) as client, pytest.raises(KeyError):
        client.get("/boom", headers={"X-Request-ID": "r-1"})
    assert sentry_logger.flush(5)
    (record,) = access(sink)
    assert record["level"] == "ERROR"
    assert record["attributes"]["status_code"] == 500
    assert record["request_id"] == "r-1"
    assert record["exception"]["type"] == "KeyError"
    assert "raise KeyError" in record["exception"]["traceback"]


def test_flask_through_the_wsgi_middleware(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()
    app = flask.Flask("shop")

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        logging.getLogger("shop").info("greeting %s", name)
        return f"hi {name}"

    @app.get("/health")
    def health() -> str:
        return "ok"

    app.wsgi_app = sentry_logger.SentryLoggerWSGIMiddleware(app.wsgi_app, exclude_paths=["/health"])
    client = app.test_client()
    assert client.get("/hello/ann", headers={"X-Request-ID": "flask-1"}).data == b"hi ann"
    assert client.get("/health").status_code == 200
    refused_response = client.post("/hello/ann")
    assert refused_response.status_code == 405 and refused_response.data  # a WSGI server reads the body
    assert sentry_logger.flush(5)
    greeting = next(e for e in sink.logs if e["logger"] == "shop")
    ok, refused = access(sink)
    assert (ok["attributes"]["method"], ok["attributes"]["path"], ok["attributes"]["status_code"]) == (
        "GET", "/hello/ann", 200)
    assert ok["request_id"] == greeting["request_id"] == "flask-1"
    assert refused["attributes"]["status_code"] == 405


def test_wsgi_exception_is_logged_and_reraised(sink: Sink, init_sdk: Callable[..., Any]) -> None:
    init_sdk()

    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("wsgi broke")

    app = sentry_logger.SentryLoggerWSGIMiddleware(broken)
    with pytest.raises(RuntimeError):
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    assert sentry_logger.flush(5)
    (record,) = access(sink)
    assert record["level"] == "ERROR" and record["exception"]["type"] == "RuntimeError"

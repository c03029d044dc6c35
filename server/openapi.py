"""The OpenAPI description served at /openapi.json.

Written by hand next to the routes; `tests/server/test_openapi.py` checks that every
declared HTTP route and method is described and nothing else is.
"""

from __future__ import annotations

from typing import Any

from server import __version__
from server.health_openapi import health_paths, health_schemas

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (unreadable JSON or parameter)", 401: "Not authenticated", 403: "CSRF token missing or wrong",
        404: "Not found, or not yours", 409: "Conflict", 413: "Too large", 415: "Unsupported encoding",
        422: "Invalid field", 429: "Rate limited (see Retry-After)", 503: "Overloaded or unavailable (see Retry-After)",
    }
    return {str(c): _resp(text[c], _ERROR) for c in codes}


_APP_ID = {"name": "app_id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
_USER: list[dict[str, list[str]]] = [{"session": []}, {"token": []}]


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or {"type": "string"}}


def _paths() -> dict[str, Any]:
    key_created = _resp("The key, shown this once", {"$ref": "#/components/schemas/KeyCreated"})
    return {
        "/ingest": {"post": {
            "summary": "Send a batch of log records (see docs/ingest-protocol.md)",
            "security": [{"ingestKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestBody"}}}},
            "responses": {"202": _resp("Committed", {"$ref": "#/components/schemas/IngestResult"}),
                          **_errors(400, 401, 413, 415, 429, 503)},
        }},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": _resp("OpenAPI 3.1")}}},
        "/healthz": {"get": {"summary": "Liveness and database check", "security": [], "responses": {"200": _resp("OK")}}},
        "/api/me": {"get": {"summary": "The caller, with the CSRF token for cookie-authenticated writes", "security": _USER,
                            "responses": {"200": _resp("The caller"), **_errors(401)}}},
        "/api/tokens": {"post": {"summary": "Create a personal API token (shown once)", "security": _USER,
                                 "responses": {"201": _resp("The token"), **_errors(401, 403, 422)}}},
        "/api/apps": {
            "get": {"summary": "List your apps", "security": _USER, "responses": {"200": _resp("Apps"), **_errors(401)}},
            "post": {"summary": "Create an app and its first API key (shown once)", "security": _USER,
                     "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/AppCreate"}}}},
                     "responses": {"201": _resp("App, key and DSN"), **_errors(401, 403, 409, 422)}},
        },
        "/api/apps/{app_id}": {
            "parameters": [_APP_ID],
            "get": {"summary": "One app", "security": _USER, "responses": {"200": _resp("App"), **_errors(401, 404)}},
            "patch": {"summary": "Rename or describe an app", "security": _USER,
                      "responses": {"200": _resp("App"), **_errors(401, 403, 404, 409, 422)}},
            "delete": {"summary": "Delete an app with its keys and logs", "security": _USER,
                       "responses": {"204": _resp("Deleted"), **_errors(401, 403, 404)}},
        },
        "/api/apps/{app_id}/keys": {
            "parameters": [_APP_ID],
            "get": {"summary": "List active keys (prefix, environment, created, last used)", "security": _USER,
                    "parameters": [_q("include_revoked", "true to include revoked keys")],
                    "responses": {"200": _resp("Keys"), **_errors(401, 404)}},
            "post": {"summary": "Create a key for an environment", "security": _USER,
                     "responses": {"201": key_created, **_errors(401, 403, 404, 422)}},
        },
        "/api/apps/{app_id}/keys/{key_id}/regenerate": {
            "parameters": [_APP_ID, _KEY_ID],
            "post": {"summary": "Issue a new key and revoke this one at once", "security": _USER,
                     "responses": {"201": key_created, **_errors(401, 403, 404, 409)}},
        },
        "/api/apps/{app_id}/keys/{key_id}": {
            "parameters": [_APP_ID, _KEY_ID],
            "delete": {"summary": "Revoke a key", "security": _USER, "responses": {"200": _resp("Revoked key"), **_errors(401, 403, 404)}},
        },
        "/api/apps/{app_id}/logs": {
            "parameters": [_APP_ID],
            "get": {
                "summary": "Query logs, newest first, with cursor pagination",
                "security": _USER,
                "parameters": [
                    _q("level", "Levels, comma-separated or repeated (DEBUG, INFO, WARNING, ERROR, CRITICAL)"),
                    _q("min_level", "Minimum level"),
                    _q("q", "Keyword search: every word must appear in the message"),
                    _q("since", "Start: ISO 8601, epoch seconds, or a duration back from now (15m, 1h, 24h, 7d)"),
                    _q("until", "End: same forms as since"),
                    _q("service", "Services, comma-separated or repeated"),
                    _q("environment", "Environments, comma-separated or repeated"),
                    _q("attr.NAME", "Attribute equality, e.g. attr.order_id=42"),
                    _q("cursor", "next_cursor of the previous page"),
                    _q("after_id", "Only logs with a larger id, oldest first (used to resume a tail)", {"type": "integer", "format": "int64"}),
                    _q("limit", "Page size (QUERY_DEFAULT_LIMIT, at most QUERY_MAX_LIMIT)", {"type": "integer"}),
                ],
                "responses": {"200": _resp("A page of logs", {"$ref": "#/components/schemas/LogPage"}), **_errors(400, 401, 404, 429)},
            },
        },
        **health_paths(),
        "/api/tail-tokens": {
            "post": {
                "summary": "A short-lived token to open the live tail WebSocket /ws/tail of one app (docs/live-tail.md)",
                "security": _USER,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["app_id"], "properties": {"app_id": {"type": "integer"}}}}}},
                "responses": {"201": _resp("Token, lifetime in seconds (TAIL_TOKEN_TTL_SECONDS) and WebSocket URL", {
                    "type": "object", "properties": {
                        "token": {"type": "string"}, "expires_in": {"type": "integer"}, "url": {"type": "string"}}}),
                    **_errors(400, 401, 403, 404, 429)},
            },
        },
        **_device_paths(),
        "/auth/oidc/login": {"get": {
            "summary": "Start OpenID Connect sign-in (redirects to the provider)", "security": [],
            "parameters": [_q("next", "Same-site path to return to after sign-in")],
            "responses": {"302": _resp("Redirect to the provider"), "404": _resp("OIDC not configured (HTML page)"),
                          "502": _resp("Provider unreachable (HTML page)")}}},
        "/auth/oidc/callback": {"get": {
            "summary": "OpenID Connect redirect target", "security": [],
            "responses": {"303": _resp("Signed in, redirect to next"), "400": _resp("Bad state or token (HTML page)"),
                          "403": _resp("Consent denied, email unverified or domain not allowed (HTML page)"),
                          "502": _resp("Provider unreachable (HTML page)")}}},
        "/auth/signin": {"get": {"summary": "Sign-in page (HTML)", "security": [], "responses": {"200": _resp("HTML page")}}},
        "/auth/local": {"post": {"summary": "One-click local developer sign-in (form post)", "security": [],
                                 "responses": {"303": _resp("Signed in, redirect to next"), "403": _resp("Refused (HTML page)")}}},
        "/auth/logout": {"post": {"summary": "Sign out (form post)", "security": [], "responses": {"303": _resp("Signed out")}}},
    }


def _device_paths() -> dict[str, Any]:
    """The CLI device authorization flow (docs/device-flow.md)."""
    pending = "RFC 8628 error in error.code: authorization_pending, slow_down (error.interval is the new interval), " \
        "access_denied, expired_token (also after the key was fetched once), invalid_grant (unknown code)"
    code_body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserCode"}}}}
    poll = {"summary": "Poll for the outcome; the key, app and DSN are returned exactly once", "security": [],
            "responses": {"200": _resp("Approved: API key (once), app, DSN", {"$ref": "#/components/schemas/DeviceKey"}),
                          "400": _resp(pending, _ERROR)}}
    decision = {"security": [{"session": []}], "requestBody": code_body}
    return {
        "/sdk/device/start": {"post": {
            "summary": "Start a terminal sign-in (sentry-logger init): device code for the CLI, user code for the person",
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["app_name"], "properties": {
                    "app_name": {"type": "string", "maxLength": 64},
                    "environment": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,31}$"}}}}}},
            "responses": {"200": _resp("Codes and where to approve", {"$ref": "#/components/schemas/DeviceStart"}),
                          **_errors(400, 422, 429)}}},
        "/sdk/device/poll": {
            "get": {**poll, "parameters": [{**_q("device_code", "The device code from start"), "required": True}]},
            "post": {**poll, "description": "Same as GET with the device code in the JSON body {\"device_code\": ...}, "
                     "which keeps it out of proxies' access logs (the CLI uses this form)."},
        },
        "/sdk/device/lookup": {"get": {
            "summary": "What a user code asks for (app name, environment), before deciding; changes nothing",
            "security": [{"session": []}], "parameters": [{**_q("user_code", "The code the terminal shows"), "required": True}],
            "responses": {"200": _resp("The request"), **_errors(401, 403, 404, 409, 422, 429)}}},
        "/sdk/device/complete": {"post": {
            "summary": "Authorize: create the app (or reuse yours of that name) and a new key for the terminal",
            **decision, "responses": {"200": _resp("Approved"), **_errors(401, 403, 404, 409, 422, 429)}}},
        "/sdk/device/deny": {"post": {
            "summary": "Deny the terminal's request", **decision,
            "responses": {"200": _resp("Denied"), **_errors(401, 403, 404, 409, 422, 429)}}},
    }


def _schemas() -> dict[str, Any]:
    s, i = {"type": "string"}, {"type": "integer"}
    return {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": s, "message": s, "field": s}, "required": ["code", "message"]}}},
        "AppCreate": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 64}, "description": {"type": "string", "maxLength": 500},
            "environment": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,31}$"}}},
        "KeyCreated": {"type": "object", "properties": {"api_key": s, "dsn": s, "key": {"type": "object"}}},
        "IngestBody": {"type": "object", "required": ["logs"], "properties": {
            "api_key": s, "batch_id": {"type": "string", "maxLength": 128}, "client_report": {"type": "object"},
            "sdk": {"type": "object"}, "logs": {"type": "array", "items": {"$ref": "#/components/schemas/LogIn"}}}},
        "LogIn": {"type": "object", "required": ["timestamp", "level", "message"], "properties": {
            "timestamp": {"oneOf": [{"type": "number"}, s]}, "level": {"oneOf": [s, i]}, "message": s,
            "service": s, "logger": s, "environment": s, "release": s, "host": s, "process_id": {"type": "integer", "format": "int64"}, "thread_name": s,
            "attributes": {"type": "object"}, "exception": {"oneOf": [{"type": "object"}, s]}, "trace_id": s, "request_id": s}},
        "IngestResult": {"type": "object", "properties": {
            "accepted": i, "rejected": i, "batch_id": {"type": ["string", "null"]}, "duplicate": {"type": "boolean"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"index": i, "field": s, "message": s}}}}},
        "DeviceStart": {"type": "object", "properties": {
            "device_code": s, "user_code": s, "verification_uri": s, "verification_uri_complete": s,
            "expires_in": i, "interval": i}},
        "DeviceKey": {"type": "object", "properties": {
            "api_key": s, "dsn": s, "environment": s, "app": {"type": "object", "properties": {"id": i, "name": s}}}},
        "UserCode": {"type": "object", "required": ["user_code"], "properties": {"user_code": s}},
        "LogPage": {"type": "object", "properties": {
            "logs": {"type": "array", "items": {"type": "object"}}, "next_cursor": {"type": ["string", "null"]}}},
        **health_schemas(),
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "sentry-logger", "version": __version__},
        "servers": [{"url": base_url}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sl_session"},
                "token": {"type": "http", "scheme": "bearer", "description": "Personal API token slt_..."},
                "ingestKey": {"type": "http", "scheme": "bearer", "description": "App API key sk_<env>_..."},
            },
        },
    }

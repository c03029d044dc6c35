"""OpenAPI entries of the health routes (server/health.py), merged into server/openapi.py."""

from __future__ import annotations

from typing import Any

__all__ = ["health_paths", "health_schemas"]

_APP_ID = {"name": "app_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_USER: list[dict[str, list[str]]] = [{"session": []}, {"token": []}]
_ERRORS = {
    "400": "Bad parameter (the error names it)", "401": "Not authenticated", "404": "Not found, or not yours",
    "429": "Rate limited (see Retry-After)",
}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or {"type": "string"}}


_RANGE = [
    _q("since", "Start: ISO 8601, epoch seconds or a duration back from now (15m, 24h, 7d). Default 1h"),
    _q("until", "End: same forms as since. Default now"),
    _q("bucket", "Bucket size: 1m, 5m, 15m, 1h, 6h, 1d, 7d ... (whole minutes dividing a day, or whole days). "
                 "Default: the ladder step giving at most ~120 buckets; at most 1500 buckets"),
    _q("tz", "IANA time zone the buckets align to (local midnights). Default UTC"),
    _q("service", "Services, comma-separated or repeated. Default: every service of the app"),
]


def _get(summary: str, params: list[dict[str, Any]], schema: str) -> dict[str, Any]:
    errors = {code: {"description": text, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Error"}}}} for code, text in _ERRORS.items()}
    return {"parameters": [_APP_ID], "get": {
        "summary": summary, "security": _USER, "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "$ref": f"#/components/schemas/{schema}"}}}}, **errors},
    }}


def health_paths() -> dict[str, Any]:
    base = "/api/apps/{app_id}/health"
    return {
        base: _get("Health summary: status per service by the rule in docs/health.md, error rate now vs the "
                   "previous window, p95, last seen, top error messages",
                   [_q("window", "Window: whole minutes or hours, 1m to 24h (default HEALTH_WINDOW_MINUTES)")],
                   "HealthSummary"),
        f"{base}/volume": _get("Records per level per bucket (all the given services together)", _RANGE,
                               "HealthVolume"),
        f"{base}/error-rate": _get("Per service: records, errors (ERROR + CRITICAL) and error rate per bucket",
                                   _RANGE, "HealthErrorRate"),
        f"{base}/latency": _get(
            "Request durations (records with attributes.duration_ms): requests, mean, p50/p95/p99 per bucket, "
            "per service or per route", [*_RANGE, _q("by", "service (default) or route"),
                                         _q("route", "With by=route: routes to keep, comma-separated or repeated")],
            "HealthLatency"),
    }


def health_schemas() -> dict[str, Any]:
    s, i, n = {"type": "string"}, {"type": "integer"}, {"type": ["number", "null"]}
    point = {"start": s, "start_s": i}
    head = {"since": s, "until": s, "bucket_seconds": i, "tz": s, "resolution_seconds": i}
    figures = {"requests": i, "mean_ms": n, "p50_ms": n, "p95_ms": n, "p99_ms": n}
    error = {"type": "object", "properties": {"service": s, "fingerprint": s, "count": i, "last_seen": s, "message": s}}
    return {
        "HealthSummary": {"type": "object", "properties": {
            "status": {"enum": ["healthy", "degraded", "failing", "silent"]}, "window_minutes": i, "since": s,
            "until": s, "previous_since": s, "top_errors": {"type": "array", "items": error},
            "services": {"type": "array", "items": {"type": "object", "properties": {
                "service": s, "status": s, "reasons": {"type": "array", "items": s}, "last_seen": s,
                "records": i, "errors": i, "error_rate": n, "previous_records": i, "previous_error_rate": n,
                "trend": {"enum": ["up", "down", "flat"]}, "requests": i, "p95_ms": n,
                "top_errors": {"type": "array", "items": error}}}}}},
        "HealthVolume": {"type": "object", "properties": {
            **head, "services": {"type": "array", "items": s}, "totals": {"type": "object"},
            "points": {"type": "array", "items": {"type": "object", "properties": {
                **point, "DEBUG": i, "INFO": i, "WARNING": i, "ERROR": i, "CRITICAL": i, "total": i}}}}},
        "HealthErrorRate": {"type": "object", "properties": {**head, "series": {"type": "array", "items": {
            "type": "object", "properties": {
                "service": s, "records": i, "errors": i, "error_rate": n,
                "points": {"type": "array", "items": {"type": "object", "properties": {
                    **point, "records": i, "errors": i, "error_rate": n}}}}}}}},
        "HealthLatency": {"type": "object", "properties": {**head, "by": s, "max_series": i, "series": {
            "type": "array", "items": {"type": "object", "properties": {
                "service": s, "route": s, "total": {"type": "object", "properties": figures},
                "points": {"type": "array", "items": {"type": "object", "properties": {**point, **figures}}}}}}}},
    }

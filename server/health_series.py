"""Health time series from the aggregate tables: volume by level, error rate, latency percentiles.

Every query seeks by (app_id, res, service[, route]) and a start_s range, and sums into
the requested buckets in SQL when they are equally long (in Python otherwise), so its cost
follows the number of stored buckets in range, never the number of logs.
"""

from __future__ import annotations

from typing import Any

from server.health_range import HealthRange
from server.health_rollup import ALL_ROUTES, LEVEL_NUMBERS
from server.health_sketch import add_encoded, percentiles
from server.health_store import HealthReader

__all__ = ["error_rate_series", "latency_series", "list_routes", "list_services", "volume_series"]

LEVEL_NAMES = {n: name for name, n in LEVEL_NUMBERS.items()}
MAX_ROUTE_SERIES = 100
_QUANTILES = (0.5, 0.95, 0.99)


def _in(values: list[Any]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


async def list_services(reader: HealthReader, app_id: int) -> list[tuple[str, int]]:
    """(service, last_seen microseconds) of every service the app has logged from."""
    rows = await reader.fetch("SELECT service, last_seen FROM health_services WHERE app_id = ?", [app_id])
    return sorted((str(s), int(t)) for s, t in rows)


async def list_routes(reader: HealthReader, app_id: int, services: list[str]) -> list[tuple[str, str]]:
    """(service, route) pairs with request durations, most recently seen first (at most MAX_ROUTE_SERIES)."""
    rows = await reader.fetch(
        f"SELECT service, route, last_seen FROM health_routes WHERE app_id = ? AND service IN {_in(services)}",
        [app_id, *services],
    )
    rows.sort(key=lambda r: (-int(r[2]), r[0], r[1]))
    return sorted((str(s), str(r)) for s, r, _ in rows[:MAX_ROUTE_SERIES])


def _sum_sql(rng: HealthRange, keys: str, values: tuple[str, ...], table: str, where: str) -> str:
    """Sum `values` per bucket and `keys` (each key a column or `expression AS name`). When every
    stored row is a whole bucket there is nothing to sum: the rows stream out in key order
    without a sort, and the caller adds them up (it always does)."""
    bucket, _ = rng.bucket_sql()
    if rng.one_row_per_bucket:
        return f"SELECT {bucket} AS b, {keys}, {', '.join(values)} FROM {table} WHERE {where}"
    names = ", ".join(k.rsplit(" AS ", 1)[-1] for k in keys.split(", "))
    sums = ", ".join(f"SUM({v})" for v in values)
    return f"SELECT {bucket} AS b, {keys}, {sums} FROM {table} WHERE {where} GROUP BY b, {names}"


def _where(rng: HealthRange, app_id: int, services: list[str]) -> tuple[str, list[Any]]:
    return (f"app_id = ? AND res = ? AND service IN {_in(services)} AND start_s >= ? AND start_s < ?",
            [app_id, rng.res, *services, rng.bounds[0], rng.bounds[-1]])


async def volume_series(reader: HealthReader, app_id: int, rng: HealthRange, services: list[str]) -> dict[str, Any]:
    """Records per level per bucket, all the given services together."""
    points = [{**s, **{name: 0 for name in LEVEL_NUMBERS}, "total": 0} for s in rng.starts()]
    if services:
        _, args = rng.bucket_sql()
        where, wargs = _where(rng, app_id, services)
        rows = await reader.fetch(_sum_sql(rng, "level", ("records",), "health_counts", where), [*args, *wargs])
        for b, level, n in rows:
            point = points[rng.index(int(b))]
            point[LEVEL_NAMES[int(level)]] += int(n)
            point["total"] += int(n)
    totals = {name: sum(p[name] for p in points) for name in (*LEVEL_NUMBERS, "total")}
    return {"points": points, "totals": totals}


def _rate(errors: int, records: int) -> float | None:
    return round(errors / records, 6) if records else None


async def error_rate_series(reader: HealthReader, app_id: int, rng: HealthRange, services: list[str]) -> list[dict[str, Any]]:
    """Per service: records, errors (ERROR + CRITICAL) and their ratio per bucket."""
    if not services:
        return []
    _, args = rng.bucket_sql()
    where, wargs = _where(rng, app_id, services)
    keys = "service, CASE WHEN level >= 40 THEN 1 ELSE 0 END AS e"
    rows = await reader.fetch(_sum_sql(rng, keys, ("records",), "health_counts", where), [*args, *wargs])
    counts: dict[str, list[list[int]]] = {s: [[0, 0] for _ in rng.bounds[:-1]] for s in services}
    for b, service, is_error, n in rows:
        cell = counts[service][rng.index(int(b))]
        cell[0] += int(n)
        if is_error:
            cell[1] += int(n)
    out = []
    for service in services:
        cells = counts[service]
        records, errors = sum(c[0] for c in cells), sum(c[1] for c in cells)
        out.append({
            "service": service, "records": records, "errors": errors, "error_rate": _rate(errors, records),
            "points": [{**s, "records": c[0], "errors": c[1], "error_rate": _rate(c[1], c[0])}
                       for s, c in zip(rng.starts(), cells, strict=True)],
        })
    return out


def _figures(requests: int, total_us: int, bins: dict[int, int]) -> dict[str, Any]:
    p50, p95, p99 = percentiles(bins.items(), _QUANTILES)
    mean = round(total_us / requests / 1000, 3) if requests else None
    return {"requests": requests, "mean_ms": mean, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


async def latency_series(
    reader: HealthReader, app_id: int, rng: HealthRange, series: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Per (service, route) — route '*' is the whole service: requests, mean and p50/p95/p99 per bucket."""
    if not series:
        return []
    services = sorted({s for s, _ in series})
    routes = sorted({r for _, r in series})
    bucket, args = rng.bucket_sql()
    where, wargs = _where(rng, app_id, services)
    where += f" AND route IN {_in(routes)}"
    wargs += routes
    rows = await reader.fetch(
        f"SELECT {bucket} AS b, service, route, requests, total_us, bins FROM health_latency WHERE {where}",
        [*args, *wargs],
    )
    wanted = set(series)
    n = len(rng.bounds) - 1
    cells: dict[tuple[str, str], list[list[Any]]] = {k: [[0, 0, {}] for _ in range(n)] for k in series}
    for b, service, route, requests, total, bins in rows:
        if (service, route) in wanted:
            cell = cells[(service, route)][rng.index(int(b))]
            cell[0] += int(requests)
            cell[1] += int(total)
            add_encoded(cell[2], bins)
    out = []
    for (service, route), per_bucket in cells.items():
        merged: dict[int, int] = {}
        for _, _, hist in per_bucket:
            for index, count in hist.items():
                merged[index] = merged.get(index, 0) + count
        out.append({
            "service": service, "route": "" if route == ALL_ROUTES else route,
            "total": _figures(sum(c[0] for c in per_bucket), sum(c[1] for c in per_bucket), merged),
            "points": [{**s, **_figures(*c)} for s, c in zip(rng.starts(), per_bucket, strict=True)],
        })
    return out

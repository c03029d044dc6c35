"""The live tail's filters: the log query's level / keyword / service / environment filters,
applied to live lines in Python and to stored lines (resume) in SQL, with the same meaning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import MultiDict

from server.errors import ApiError
from server.logs_query import LogQuery, parse_log_query

__all__ = ["FILTER_KEYS", "LogFilter"]

FILTER_KEYS = ("level", "min_level", "q", "service", "environment")
_WORD = re.compile(r"[^\W_]+")
_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


@dataclass(frozen=True)
class LogFilter:
    """Which lines a tail shows. Empty fields match everything."""

    levels: frozenset[int] = frozenset()
    min_level: int | None = None
    words: tuple[str, ...] = ()
    services: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, params: Mapping[str, Any] | Any) -> LogFilter:
        """From query parameters or a JSON object with the keys of FILTER_KEYS (strings or lists).
        Raises ApiError (400, naming the field) for a bad value or an unknown key."""
        items: list[tuple[str, str]] = []
        keys = list(params.keys())
        for key in keys:
            if key not in FILTER_KEYS:
                raise ApiError(400, "invalid_parameter", f"unknown filter {key[:40]!r}; use {', '.join(FILTER_KEYS)}",
                               field=key)
            values = params.getlist(key) if hasattr(params, "getlist") else params[key]
            for value in values if isinstance(values, list) else [values]:
                if value is None:
                    continue
                if not isinstance(value, (str, int)):
                    raise ApiError(400, "invalid_parameter", f"{key} must be a string or a list of strings", field=key)
                items.append((key, str(value)))
        query: LogQuery = parse_log_query(MultiDict(items), 1, 1)
        return cls(
            frozenset(query.levels), query.min_level, tuple(query.words), frozenset(query.services),
            frozenset(query.environments),
        )

    def to_query(self, after_id: int, limit: int) -> LogQuery:
        """The equivalent SQL query for stored lines with id > after_id, oldest first."""
        return LogQuery(
            levels=sorted(self.levels), min_level=self.min_level, words=list(self.words),
            services=sorted(self.services), environments=sorted(self.environments), after_id=after_id, limit=limit,
        )

    def match(self, line: dict[str, Any]) -> bool:
        """Whether an API-shaped log line (`row_to_api`) passes."""
        level = line["level_number"]
        if self.levels and level not in self.levels:
            return False
        if self.min_level is not None and level < self.min_level:
            return False
        if self.services and line["service"] not in self.services:
            return False
        if self.environments and line["environment"] not in self.environments:
            return False
        if self.words:
            present = set(_WORD.findall(line["message"].lower()))
            return all(w in present for w in self.words)
        return True

    def describe(self) -> dict[str, Any]:
        """The filter as the protocol echoes it back."""
        return {
            "level": [_LEVEL_NAMES.get(x, str(x)) for x in sorted(self.levels)],
            "min_level": _LEVEL_NAMES.get(self.min_level) if self.min_level is not None else None,
            "q": " ".join(self.words),
            "service": sorted(self.services),
            "environment": sorted(self.environments),
        }

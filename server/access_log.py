"""uvicorn's access log, without a line for every successful POST /ingest.

Every process of every app that uses the SDK posts a batch about once a second, so at scale the
access log would be mostly "POST /ingest 202" (1,000 lines a second at 100,000 logs a second)
and cost the event loop ~20 us a request to format and write. Ingest requests that fail (401,
413, 429, 503 ...) are still logged, as is every other request.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["QuietIngest", "quiet_ingest_access_log"]


def _accepted_ingest(args: object) -> bool:
    """Whether uvicorn's access-log args (client address, method, path with query, HTTP
    version, status) are those of a POST /ingest answered 2xx."""
    if isinstance(args, tuple) and len(args) == 5 and args[1] == "POST" and args[2] == "/ingest":
        status = args[4]
        return isinstance(status, int) and 200 <= status < 300
    return False


class QuietIngest(logging.Filter):
    """Drops uvicorn's access record of a POST /ingest answered 2xx."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _accepted_ingest(record.args)


def quiet_ingest_access_log() -> None:
    """Install the check in front of the `uvicorn.access` logger's `info`, and QuietIngest for
    records made any other way (once). uvicorn calls `access_logger.info(...)` for every
    response; a filter sees the request only once the record is made (the caller's frame looked
    up, a LogRecord built): ~4 us a request, against ~0.2 for the check before the call."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietIngest) for f in access.filters):
        access.addFilter(QuietIngest())
    if "info" not in vars(access):
        emit = access.info

        def info(msg: object, *args: object, **kwargs: Any) -> None:
            if not _accepted_ingest(args):
                emit(msg, *args, **kwargs)

        access.info = info  # type: ignore[method-assign]

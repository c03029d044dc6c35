"""uvicorn's access log, without a line for every successful POST /ingest.

Every process of every app that uses the SDK posts a batch about once a second, so at scale the
access log would be mostly "POST /ingest 202" (1,000 lines a second at 100,000 logs a second)
and cost the event loop ~20 us a request to format and write. Ingest requests that fail (401,
413, 429, 503 ...) are still logged, as is every other request.
"""

from __future__ import annotations

import logging

__all__ = ["QuietIngest", "quiet_ingest_access_log"]


class QuietIngest(logging.Filter):
    """Drops uvicorn's access record of a POST /ingest answered 2xx. uvicorn's record args:
    (client address, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and args[1] == "POST" and args[2] == "/ingest":
            status = args[4]
            return not (isinstance(status, int) and 200 <= status < 300)
        return True


def quiet_ingest_access_log() -> None:
    """Install QuietIngest on the `uvicorn.access` logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietIngest) for f in access.filters):
        access.addFilter(QuietIngest())

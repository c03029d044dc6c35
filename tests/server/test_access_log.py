"""server.access_log: accepted ingest batches leave no access-log line, and cost no log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.access_log import quiet_ingest_access_log

_FORMAT = '%s - "%s %s HTTP/%s" %d'


@pytest.fixture
def made_records() -> Iterator[list[logging.LogRecord]]:
    """Every LogRecord made while the test runs (whether a handler sees it or not)."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    yield made
    logging.setLogRecordFactory(factory)


def test_accepted_ingest_makes_no_record_and_the_rest_is_logged(
    made_records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_ingest_access_log()
    quiet_ingest_access_log()  # once: the check is not stacked
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(_FORMAT, "127.0.0.1:5", "POST", "/ingest", "1.1", 202)
        assert made_records == []
        access.info(_FORMAT, "127.0.0.1:5", "POST", "/ingest", "1.1", 401)
        access.info(_FORMAT, "127.0.0.1:5", "POST", "/ingest?x=1", "1.1", 202)
        access.info(_FORMAT, "127.0.0.1:5", "GET", "/ingest", "1.1", 200)
        access.info("a message of another shape")
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert lines == ['127.0.0.1:5 - "POST /ingest HTTP/1.1" 401', '127.0.0.1:5 - "POST /ingest?x=1 HTTP/1.1" 202',
                     '127.0.0.1:5 - "GET /ingest HTTP/1.1" 200', "a message of another shape"]

-- Request records (attributes with a valid duration_ms, as the SDK's middleware sends) keep
-- their route key, duration and latency histogram bin apart, so the health aggregator counts
-- new logs with plain GROUP BYs (server/health_aggregate.py), no JSON. On SQLite in a table of
-- their own, one row per request record: three more (NULL) columns on every log row cost the
-- writer 17% of its insert rate (binding them), where this costs only the request records.
-- PostgreSQL keeps them as columns of logs (COPY sends a NULL in a few bytes).
-- A request record's fields are deleted with its log (app deletion), by the trigger below.
CREATE TABLE log_requests (
    id INTEGER PRIMARY KEY, -- the log's id
    route TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    duration_bin INTEGER NOT NULL
);
CREATE TRIGGER log_requests_delete AFTER DELETE ON logs BEGIN
    DELETE FROM log_requests WHERE id = old.id;
END;

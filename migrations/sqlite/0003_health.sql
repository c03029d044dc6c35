-- Health aggregates (docs/health.md), kept by the log writer inside its commit transaction.
-- res is the bucket width in seconds (60, 3600 or 86400); start_s the bucket's start in epoch
-- seconds, UTC, a multiple of res. Keys lead with (app_id, res, service[, route]) so a query
-- for a few services seeks straight to them; health_services/health_routes list those keys.
CREATE TABLE health_services (
    app_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    last_seen INTEGER NOT NULL, -- microseconds: the newest min(ts, received_at)
    PRIMARY KEY (app_id, service)
) WITHOUT ROWID;

CREATE TABLE health_routes (
    app_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    route TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (app_id, service, route)
) WITHOUT ROWID;

CREATE TABLE health_counts (
    app_id INTEGER NOT NULL,
    res INTEGER NOT NULL,
    service TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    level INTEGER NOT NULL, -- 10, 20, 30, 40, 50 (DEBUG ... CRITICAL)
    records INTEGER NOT NULL,
    PRIMARY KEY (app_id, res, service, start_s, level)
) WITHOUT ROWID;

-- route '*' is every route of the service together. bins: the request durations' histogram
-- as a JSON array [k, n_k, n_k+1, ...]: n_i requests took 2^(i/8) to 2^((i+1)/8) ms
-- (server/health_sketch.py). One row per bucket, so a 30-day chart reads hundreds of rows.
CREATE TABLE health_latency (
    app_id INTEGER NOT NULL,
    res INTEGER NOT NULL,
    service TEXT NOT NULL,
    route TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    total_us INTEGER NOT NULL,
    bins TEXT NOT NULL,
    PRIMARY KEY (app_id, res, service, route, start_s)
) WITHOUT ROWID;

-- Which writer committed latency rows last (a token that changes every commit): a writer that
-- finds its own token may trust its in-memory copy of the rows (server/health_store.py).
CREATE TABLE health_writer (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL
);

CREATE TABLE health_errors (
    app_id INTEGER NOT NULL,
    res INTEGER NOT NULL,
    service TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    fingerprint TEXT NOT NULL, -- the message with numbers and ids replaced by #
    records INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    message TEXT NOT NULL, -- the first message seen with this fingerprint in the bucket
    PRIMARY KEY (app_id, res, service, start_s, fingerprint)
) WITHOUT ROWID;

CREATE TRIGGER health_app_delete AFTER DELETE ON apps BEGIN
    DELETE FROM health_services WHERE app_id = old.id;
    DELETE FROM health_routes WHERE app_id = old.id;
    DELETE FROM health_counts WHERE app_id = old.id;
    DELETE FROM health_latency WHERE app_id = old.id;
    DELETE FROM health_errors WHERE app_id = old.id;
END;

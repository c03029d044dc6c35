-- Accounts, apps, API keys, logs with full-text search, ingest bookkeeping (SQLite).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    issuer TEXT NOT NULL,
    sub TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    last_login_at INTEGER,
    UNIQUE (issuer, sub)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE apps (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_app ON api_keys (app_id);

-- ts and received_at are microseconds since the Unix epoch, UTC.
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    app_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    level INTEGER NOT NULL,
    level_name TEXT NOT NULL,
    service TEXT NOT NULL DEFAULT '',
    logger TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    attributes TEXT,
    exception TEXT,
    environment TEXT NOT NULL DEFAULT '',
    release TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    process_id INTEGER,
    thread_name TEXT NOT NULL DEFAULT '',
    trace_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logs_app_ts ON logs (app_id, ts, id);
CREATE INDEX logs_app_level_ts ON logs (app_id, level, ts);

-- Keyword search only asks "does the message contain these words", so no positions (detail=none).
-- The writer fills logs_fts with one INSERT ... SELECT per commit: 4x faster than a per-row trigger.
CREATE VIRTUAL TABLE logs_fts USING fts5 (
    message, content='logs', content_rowid='id', tokenize='unicode61 remove_diacritics 0', detail=none, columnsize=0
);
CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts (logs_fts, rowid, message) VALUES ('delete', old.id, old.message);
END;

CREATE TABLE ingest_batches (
    app_id INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    committed_at INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    PRIMARY KEY (app_id, batch_id)
);
CREATE INDEX ingest_batches_committed ON ingest_batches (committed_at);

CREATE TABLE sdk_reports (
    id INTEGER PRIMARY KEY,
    app_id INTEGER NOT NULL,
    api_key_id INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX sdk_reports_app ON sdk_reports (app_id, received_at);

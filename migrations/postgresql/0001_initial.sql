-- Accounts, apps, API keys, logs with full-text search, ingest bookkeeping (PostgreSQL).
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    issuer TEXT NOT NULL,
    sub TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_login_at BIGINT,
    UNIQUE (issuer, sub)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE apps (
    id BIGSERIAL PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    app_id BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_app ON api_keys (app_id);

-- ts and received_at are microseconds since the Unix epoch, UTC. Ids are allocated by the
-- writer under an advisory lock, so ids are committed in increasing order (the tail relies on it).
CREATE SEQUENCE logs_id_seq;
CREATE TABLE logs (
    id BIGINT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    level SMALLINT NOT NULL,
    level_name TEXT NOT NULL,
    service TEXT NOT NULL DEFAULT '',
    logger TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    attributes JSONB,
    exception TEXT,
    environment TEXT NOT NULL DEFAULT '',
    release TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    process_id BIGINT,
    thread_name TEXT NOT NULL DEFAULT '',
    trace_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    -- The message's distinct lower-cased words (runs of letters and digits), filled by the
    -- writer: keyword search is `words @> ARRAY[...]`, the same answers as SQLite's FTS5.
    words TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX logs_app_ts ON logs (app_id, ts, id);
CREATE INDEX logs_app_level_ts ON logs (app_id, level, ts);
CREATE INDEX logs_words ON logs USING GIN (words);

CREATE TABLE ingest_batches (
    app_id BIGINT NOT NULL,
    batch_id TEXT NOT NULL,
    committed_at BIGINT NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    PRIMARY KEY (app_id, batch_id)
);
CREATE INDEX ingest_batches_committed ON ingest_batches (committed_at);

CREATE TABLE sdk_reports (
    id BIGSERIAL PRIMARY KEY,
    app_id BIGINT NOT NULL,
    api_key_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    report JSONB NOT NULL
);
CREATE INDEX sdk_reports_app ON sdk_reports (app_id, received_at);

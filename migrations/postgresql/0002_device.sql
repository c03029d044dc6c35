-- CLI device authorization (RFC 8628 style), see docs/device-flow.md (PostgreSQL).
-- Secrets are never stored: the device code and the user code only as SHA-256 hashes, the
-- API key (between approval and the one poll that fetches it) sealed to a public key that
-- only the device code's holder can derive the private half of.
CREATE TABLE device_authorizations (
    id BIGSERIAL PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash TEXT NOT NULL,
    seal_public TEXT NOT NULL,
    app_name TEXT NOT NULL,
    environment TEXT NOT NULL,
    requested_from TEXT NOT NULL DEFAULT '',
    -- pending -> approving -> approved -> delivered; pending -> denied; any open state -> expired
    status TEXT NOT NULL DEFAULT 'pending',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    interval_s BIGINT NOT NULL,
    last_poll_ms BIGINT,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    app_id BIGINT REFERENCES apps (id) ON DELETE SET NULL,
    api_key_id BIGINT REFERENCES api_keys (id) ON DELETE SET NULL,
    sealed_key TEXT,
    decided_at BIGINT,
    delivered_at BIGINT
);
CREATE INDEX device_authorizations_user_code ON device_authorizations (user_code_hash);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);

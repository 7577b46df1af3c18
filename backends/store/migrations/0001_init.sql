-- One schema for SQLite and PostgreSQL. Decimals are TEXT (parsed exactly
-- with rust_decimal), timestamps are RFC 3339 UTC TEXT
-- (YYYY-MM-DDTHH:MM:SSZ, which sorts chronologically), integers BIGINT.

CREATE TABLE IF NOT EXISTS stocks (
    ticker            TEXT PRIMARY KEY,
    base_rate         TEXT NOT NULL,
    volatility_index  TEXT NOT NULL,
    event_risk_factor TEXT NOT NULL,
    min_rate          TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS clients (
    client_id         TEXT PRIMARY KEY,
    markup_percentage TEXT NOT NULL,
    fee_type          TEXT NOT NULL CHECK (fee_type IN ('FLAT', 'PERCENTAGE')),
    fee_amount        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id                TEXT PRIMARY KEY,
    key_hash              TEXT NOT NULL UNIQUE,
    key_prefix            TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    scopes                TEXT NOT NULL DEFAULT '',
    rate_limit_per_minute BIGINT,
    expires_at            TEXT,
    created_at            TEXT NOT NULL,
    revoked_at            TEXT,
    replaced_by           TEXT
);

CREATE INDEX IF NOT EXISTS api_keys_client_id ON api_keys (client_id);

CREATE TABLE IF NOT EXISTS audit_log (
    audit_id         TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL,
    caller           TEXT,
    client_id        TEXT NOT NULL,
    ticker           TEXT NOT NULL,
    position_value   TEXT NOT NULL,
    loan_days        BIGINT NOT NULL,
    borrow_rate_used TEXT NOT NULL,
    borrow_cost      TEXT NOT NULL,
    markup           TEXT NOT NULL,
    transaction_fees TEXT NOT NULL,
    total_fee        TEXT NOT NULL,
    created_at       TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_log_created_at ON audit_log (created_at);
CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log (request_id);

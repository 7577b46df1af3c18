-- Key usage and key history (same conventions as 0001_init.sql: one schema
-- for SQLite and PostgreSQL, RFC 3339 UTC TEXT timestamps, BIGINT integers,
-- random text ids).

-- When the key was last accepted by the auth service (written at most once
-- a minute per key); NULL = never used since this column exists.
ALTER TABLE api_keys ADD COLUMN last_used_at TEXT;

-- Append-only history of key operations, written in the same transaction
-- as the change it records. `seq` numbers the events of one key (1, 2, ...)
-- so that events within the same second keep their order. `details` is a
-- JSON object describing what changed.
CREATE TABLE IF NOT EXISTS api_key_events (
    event_id TEXT PRIMARY KEY,
    key_id   TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    action   TEXT NOT NULL CHECK (action IN ('create', 'update', 'rotate', 'revoke')),
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}',
    UNIQUE (key_id, seq)
);

-- Batch ingestion: one row per batch, and stored Idempotency-Key outcomes.
CREATE TABLE IF NOT EXISTS ingest_batches (
    id            TEXT    PRIMARY KEY NOT NULL,
    mode          TEXT    NOT NULL CHECK (mode IN ('sync', 'async')),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'committed', 'rejected')),
    content_type  TEXT    NOT NULL,
    payload       BLOB,
    payload_bytes INTEGER NOT NULL DEFAULT 0,
    row_count     INTEGER,
    error_count   INTEGER,
    errors        TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT
);
CREATE INDEX IF NOT EXISTS ingest_batches_pending_idx ON ingest_batches (created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status_code   INTEGER NOT NULL,
    response      TEXT    NOT NULL,
    location      TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (scope, key)
);

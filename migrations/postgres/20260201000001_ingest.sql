-- Batch ingestion: one row per batch (synchronous or asynchronous), and the stored
-- outcomes of requests made with an Idempotency-Key.
CREATE TABLE IF NOT EXISTS ingest_batches (
    id            uuid        PRIMARY KEY,
    mode          text        NOT NULL CHECK (mode IN ('sync', 'async')),
    status        text        NOT NULL CHECK (status IN ('pending', 'committed', 'rejected')),
    content_type  text        NOT NULL,
    payload       bytea,                -- async batches until processed
    payload_bytes bigint      NOT NULL DEFAULT 0,
    row_count     bigint,
    error_count   bigint,
    errors        jsonb,
    attempts      integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS ingest_batches_pending_idx ON ingest_batches (created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status_code   integer     NOT NULL,
    response      text        NOT NULL,
    location      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

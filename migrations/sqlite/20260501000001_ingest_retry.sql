-- The async batch queue cannot be poisoned: attempts counted in their own transaction,
-- backoff between attempts, a readable reason for rejected batches (see the PostgreSQL
-- migration of the same name).
ALTER TABLE ingest_batches ADD COLUMN next_attempt_at TEXT;
ALTER TABLE ingest_batches ADD COLUMN last_error TEXT;
ALTER TABLE ingest_batches ADD COLUMN reason TEXT;

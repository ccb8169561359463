-- The async batch queue cannot be poisoned (docs/ingestion-design.md, "Retries and dead
-- letters"): every claim counts an attempt in its own committed transaction, a failed
-- attempt pushes the batch's next attempt back (exponential backoff) so the batches
-- behind it go first, and a batch ends `rejected` with a readable reason after a
-- non-transient error or too many attempts.
--
--   next_attempt_at  the batch is not claimed before this (NULL: due now)
--   last_error       why the latest attempt failed (transient failures, while pending)
--   reason           why the batch was rejected (one sentence; the row errors stay in
--                    `errors`)
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz;
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS reason text;

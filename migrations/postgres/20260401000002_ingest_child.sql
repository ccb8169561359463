-- Batches from POST /prices and POST /batches go into inheritance children of `prices`
-- that have no insert trigger and no index (docs/ingestion-design.md).
--
-- Measured with 50,000-row COPYs on the 2-core machine (median-ish of 7, noisy): a bare
-- table 35 ms; `prices` 43-59 ms, where the statement trigger captures every row in a
-- transition table only to find that pricehub's batches have nothing to fold
-- synchronously (they are left raw for the compactor, 20260201000002_write_path.sql); a
-- child without that trigger 35 ms, but 49 ms with a BRIN index on batch_seq (per-row
-- index maintenance), which the readers need to find the raw tail. Hence two children:
--
--   prices_ingest_raw  batches not yet compacted: no index, small (the compactor empties
--                      it every second), so readers scan it whole;
--   prices_ingested    compacted batches: the compactor moves rows here from the raw
--                      child in the transaction that folds them into price_daily and
--                      advances the watermark; nothing reads it by batch_seq.
--
-- Nothing changes for readers and writers of `prices`: a query on `prices` sees the
-- children's rows (COUNT(*), DELETE, UPDATE, TRUNCATE), and statement triggers on
-- `prices` get the children's rows in their transition tables. What the insert trigger
-- did for pricehub's batches is done by pricehub in the same transaction: the referenced
-- ports are locked FOR KEY SHARE (and checked), and rates_generation is bumped with a
-- NOTIFY. Other writers insert into `prices` as before.
SET LOCAL client_min_messages = warning;

CREATE TABLE IF NOT EXISTS prices_ingest_raw () INHERITS (prices);
CREATE TABLE IF NOT EXISTS prices_ingested () INHERITS (prices);
ALTER TABLE prices_ingest_raw DROP CONSTRAINT IF EXISTS prices_ingest_raw_batch_seq_check;
ALTER TABLE prices_ingest_raw ADD CONSTRAINT prices_ingest_raw_batch_seq_check CHECK (batch_seq IS NOT NULL);
ALTER TABLE prices_ingested DROP CONSTRAINT IF EXISTS prices_ingested_batch_seq_check;
ALTER TABLE prices_ingested ADD CONSTRAINT prices_ingested_batch_seq_check CHECK (batch_seq IS NOT NULL);

-- Deletes and updates wait for a running compaction BEFORE they touch a row. (Their
-- AFTER triggers wait for it too, but by then they hold row locks the compactor may need
-- when it moves rows out of prices_ingest_raw: a deadlock.)
CREATE OR REPLACE FUNCTION pricehub_wait_for_compaction() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7302);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS prices_wait_for_compaction ON prices;
CREATE TRIGGER prices_wait_for_compaction BEFORE DELETE OR UPDATE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_wait_for_compaction();
DROP TRIGGER IF EXISTS prices_wait_for_compaction ON prices_ingested;
CREATE TRIGGER prices_wait_for_compaction BEFORE DELETE OR UPDATE ON prices_ingested
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_wait_for_compaction();

-- Deletes and updates addressed to the compacted child directly keep price_daily right
-- through the same triggers as the parent.
DROP TRIGGER IF EXISTS price_daily_delete ON prices_ingested;
CREATE TRIGGER price_daily_delete AFTER DELETE ON prices_ingested
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_remove();
DROP TRIGGER IF EXISTS price_daily_update_remove ON prices_ingested;
CREATE TRIGGER price_daily_update_remove AFTER UPDATE ON prices_ingested
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_remove();
DROP TRIGGER IF EXISTS price_daily_update_add ON prices_ingested;
CREATE TRIGGER price_daily_update_add AFTER UPDATE ON prices_ingested
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_add();

-- The raw child is the compactor's to delete from (it moves rows); anyone else deletes or
-- updates through `prices` (TRUNCATE prices empties every child, as it should).
CREATE OR REPLACE FUNCTION pricehub_raw_batches_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('pricehub.compacting', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'prices_ingest_raw holds batches being compacted; delete or update through prices'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS prices_ingest_raw_guard ON prices_ingest_raw;
CREATE TRIGGER prices_ingest_raw_guard BEFORE DELETE OR UPDATE ON prices_ingest_raw
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_raw_batches_guard();

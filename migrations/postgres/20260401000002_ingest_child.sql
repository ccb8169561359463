-- Batches from POST /prices and POST /batches go into `prices_ingested`, an inheritance
-- child of `prices` without the insert trigger (docs/ingestion-design.md).
--
-- Measured with 50,000-row COPYs: 26-28 ms into a bare table, 43-59 ms into `prices`,
-- where the statement trigger captures every row in a transition table (new_rows) only
-- to find that pricehub's batches have nothing to fold synchronously (they are left raw
-- for the compactor, see 20260201000002_write_path.sql); 35-36 ms into a child without it.
--
-- Nothing else changes for readers and writers of `prices`: a query on `prices` sees the
-- child's rows (the raw-tail union, the compactor, COUNT(*), DELETE, UPDATE, TRUNCATE), and
-- statement triggers on `prices` get the child's rows in their transition tables. What the
-- insert trigger did for pricehub's batches is done by pricehub in the same transaction:
-- the referenced ports are locked FOR KEY SHARE (and checked), and rates_generation is
-- bumped with a NOTIFY.
--
-- The child is pricehub's: other writers insert into `prices` as before. Rows in it always
-- carry a batch_seq; deletes and updates addressed to the child directly keep price_daily
-- right through the same triggers as the parent.
SET LOCAL client_min_messages = warning;

CREATE TABLE IF NOT EXISTS prices_ingested () INHERITS (prices);
ALTER TABLE prices_ingested DROP CONSTRAINT IF EXISTS prices_ingested_batch_seq_check;
ALTER TABLE prices_ingested ADD CONSTRAINT prices_ingested_batch_seq_check CHECK (batch_seq IS NOT NULL);
CREATE INDEX IF NOT EXISTS prices_ingested_batch_seq_brin ON prices_ingested USING brin (batch_seq);

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

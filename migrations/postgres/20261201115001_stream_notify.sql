-- The instrument stream (GET /instruments/stream) of every API process LISTENs on
-- `pricehub_feed`: a statement trigger on `instruments` sends one payload-less NOTIFY per
-- statement that changes it, i.e. once per committed feed batch (pricehub_feed_commit
-- upserts instruments once per batch), whoever writes. PostgreSQL delivers it at COMMIT
-- and never for a rolled-back batch, and folds identical notifications of one
-- transaction into one. Listeners re-read `instruments` (a row per symbol) on
-- notification, so the payload stays empty and no size limit applies; a notification
-- lost while a listener reconnects is caught up by the re-read after reconnecting.
CREATE OR REPLACE FUNCTION pricehub_feed_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pricehub_feed', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS instruments_notify ON instruments;
CREATE TRIGGER instruments_notify AFTER INSERT OR UPDATE ON instruments
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_feed_notify();

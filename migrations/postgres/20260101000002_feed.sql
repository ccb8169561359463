-- Live feed storage (SPEC §1): every trade the collector receives, plus a per-symbol
-- summary maintained in the same transaction as the inserts.
--
-- Time is stored as `ts_ms bigint`, milliseconds since the Unix epoch exactly as on the
-- wire: no conversion on the hot path (COPY binary), no precision or range surprises, and
-- candle buckets are integer arithmetic identical on both backends. The API renders
-- RFC 3339 times. `size` is bigint because the wire's u32 does not fit an integer.
--
-- Dedupe key: (run_id, seq). Each collector process picks a random 63-bit run_id at start
-- and numbers every trade it receives 0, 1, 2, … in arrival order; the pair travels with
-- the trade through memory, the on-disk spool and every retry. A replay after a crash or
-- an ambiguous commit (connection lost during COMMIT) therefore carries the same key,
-- and the unique index turns the second copy into a no-op (the collector falls back to
-- INSERT … ON CONFLICT DO NOTHING when its fast COPY hits the index). Two different
-- receipts of the same market trade (two collectors, or a provider replaying) are two
-- rows on purpose: the key identifies a receipt, not a market event.
CREATE TABLE IF NOT EXISTS trades (
    id          bigserial PRIMARY KEY,
    symbol      text             NOT NULL,
    ts_ms       bigint           NOT NULL,
    price       double precision NOT NULL CHECK (price > 0),
    size        bigint           NOT NULL CHECK (size >= 0),
    run_id      bigint           NOT NULL,
    seq         bigint           NOT NULL,
    received_ms bigint           NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS trades_receipt_key ON trades (run_id, seq);
-- Newest-first pages and candle ranges per symbol; id breaks ties of equal timestamps.
CREATE INDEX IF NOT EXISTS trades_symbol_ts_idx ON trades (symbol, ts_ms DESC, id DESC);

-- Derived: latest price/time and number of stored trades per symbol (GET /instruments).
CREATE TABLE IF NOT EXISTS instruments (
    symbol       text             PRIMARY KEY,
    last_price   double precision NOT NULL,
    last_ts_ms   bigint           NOT NULL,
    last_id      bigint           NOT NULL,
    ticks        bigint           NOT NULL
);

-- Backfill (a no-op on a fresh database; keeps the migration re-runnable on one that has
-- trades from elsewhere).
INSERT INTO instruments (symbol, last_price, last_ts_ms, last_id, ticks)
SELECT DISTINCT ON (symbol) symbol, price, ts_ms, id, COUNT(*) OVER (PARTITION BY symbol)
FROM trades
ORDER BY symbol, ts_ms DESC, id DESC
ON CONFLICT (symbol) DO NOTHING;

-- Statement-level trigger with a transition table: one grouped upsert per COPY or INSERT
-- statement (not per row), inside the writing transaction, whoever writes. Only rows that
-- were really inserted are in new_rows, so ON CONFLICT DO NOTHING replays count right.
CREATE OR REPLACE FUNCTION pricehub_instruments_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instruments AS i (symbol, last_price, last_ts_ms, last_id, ticks)
    SELECT DISTINCT ON (symbol) symbol, price, ts_ms, id, COUNT(*) OVER (PARTITION BY symbol)
    FROM new_rows
    ORDER BY symbol, ts_ms DESC, id DESC
    ON CONFLICT (symbol) DO UPDATE SET
        ticks = i.ticks + EXCLUDED.ticks,
        last_price = CASE WHEN (EXCLUDED.last_ts_ms, EXCLUDED.last_id) > (i.last_ts_ms, i.last_id)
                          THEN EXCLUDED.last_price ELSE i.last_price END,
        last_id = CASE WHEN (EXCLUDED.last_ts_ms, EXCLUDED.last_id) > (i.last_ts_ms, i.last_id)
                       THEN EXCLUDED.last_id ELSE i.last_id END,
        last_ts_ms = GREATEST(i.last_ts_ms, EXCLUDED.last_ts_ms);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pricehub_instruments_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE instruments;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS instruments_insert ON trades;
CREATE TRIGGER instruments_insert AFTER INSERT ON trades
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_instruments_add();

DROP TRIGGER IF EXISTS instruments_truncate ON trades;
CREATE TRIGGER instruments_truncate AFTER TRUNCATE ON trades
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_instruments_truncate();

-- Live feed storage; see migrations/postgres/20260101000002_feed.sql for the design
-- (ts_ms as integer milliseconds, the (run_id, seq) dedupe key, the derived table).
CREATE TABLE IF NOT EXISTS trades (
    id          INTEGER PRIMARY KEY,
    symbol      TEXT    NOT NULL,
    ts_ms       INTEGER NOT NULL,
    price       REAL    NOT NULL CHECK (price > 0),
    size        INTEGER NOT NULL CHECK (size >= 0),
    run_id      INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS trades_receipt_key ON trades (run_id, seq);
CREATE INDEX IF NOT EXISTS trades_symbol_ts_idx ON trades (symbol, ts_ms DESC, id DESC);

CREATE TABLE IF NOT EXISTS instruments (
    symbol     TEXT    PRIMARY KEY NOT NULL,
    last_price REAL    NOT NULL,
    last_ts_ms INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    ticks      INTEGER NOT NULL
) WITHOUT ROWID;

-- SQLite has only row triggers; they run inside the writing transaction, and INSERT OR
-- IGNORE / ON CONFLICT DO NOTHING fire them only for rows really inserted.
CREATE TRIGGER IF NOT EXISTS instruments_insert AFTER INSERT ON trades BEGIN
    INSERT INTO instruments (symbol, last_price, last_ts_ms, last_id, ticks)
    VALUES (NEW.symbol, NEW.price, NEW.ts_ms, NEW.id, 1)
    ON CONFLICT (symbol) DO UPDATE SET
        ticks = ticks + 1,
        last_price = CASE WHEN (excluded.last_ts_ms, excluded.last_id) > (last_ts_ms, last_id)
                          THEN excluded.last_price ELSE last_price END,
        last_id = CASE WHEN (excluded.last_ts_ms, excluded.last_id) > (last_ts_ms, last_id)
                       THEN excluded.last_id ELSE last_id END,
        last_ts_ms = max(last_ts_ms, excluded.last_ts_ms);
END;

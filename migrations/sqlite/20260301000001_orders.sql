-- BTC buy orders (issue 5). SQLite has no exact decimal type: fixed-unit quantities are
-- integers (cents, satoshis) and the rate is canonical decimal text. Never REAL.
CREATE TABLE IF NOT EXISTS orders (
    id            TEXT    PRIMARY KEY NOT NULL,
    created_at    TEXT    NOT NULL,   -- RFC 3339 UTC with microseconds (fixed width)
    currency      TEXT    NOT NULL CHECK (currency IN ('EUR', 'GBP', 'USD')),
    amount_cents  INTEGER NOT NULL CHECK (amount_cents > 0 AND amount_cents < 100000000000),
    rate          TEXT    NOT NULL,   -- BTC base, fiat quote, e.g. '39612.0558'
    btc_sats      INTEGER NOT NULL CHECK (btc_sats > 0)
);
CREATE INDEX IF NOT EXISTS orders_newest_idx ON orders (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS btc_ledger (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    total_sats  INTEGER NOT NULL CHECK (total_sats >= 0)
);
INSERT OR IGNORE INTO btc_ledger (id, total_sats)
SELECT 1, COALESCE(SUM(btc_sats), 0) FROM orders;

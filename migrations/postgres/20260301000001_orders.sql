-- BTC buy orders (issue 5). Exact numerics only; the cap ledger is one row updated in
-- the same transaction as every insert (see src/orders/store.rs).
CREATE TABLE IF NOT EXISTS orders (
    id          uuid          PRIMARY KEY,
    created_at  timestamptz   NOT NULL,
    currency    text          NOT NULL CHECK (currency IN ('EUR', 'GBP', 'USD')),
    amount      numeric(11,2) NOT NULL CHECK (amount > 0 AND amount < 1000000000),
    rate        numeric(20,8) NOT NULL CHECK (rate > 0),      -- BTC base, fiat quote
    btc_amount  numeric(16,8) NOT NULL CHECK (btc_amount > 0) -- amount / rate, rounded up
);
-- Keyset paging, newest first: WHERE (created_at, id) < (…) ORDER BY created_at DESC, id DESC.
CREATE INDEX IF NOT EXISTS orders_newest_idx ON orders (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS btc_ledger (
    id          smallint PRIMARY KEY CHECK (id = 1),
    total_sats  bigint   NOT NULL CHECK (total_sats >= 0)
);
INSERT INTO btc_ledger (id, total_sats)
SELECT 1, COALESCE(SUM(btc_amount * 100000000), 0)::bigint FROM orders
ON CONFLICT (id) DO NOTHING;

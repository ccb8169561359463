-- Status page visits (issue 11). A visitor is the HMAC-SHA256 of the client address
-- under a key kept here (or set by --visit-key), so raw addresses are never stored and
-- every replica counts a visitor once. One upsert counts a visit (src/status/visits.rs).
CREATE TABLE IF NOT EXISTS status_visitors (
    visitor BYTEA PRIMARY KEY CHECK (length(visitor) = 32),
    visits BIGINT NOT NULL CHECK (visits > 0),
    first_visit TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_visit TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The number of distinct visitors, kept by the same statement that inserts a new
-- visitor (so the page never counts the whole table).
CREATE TABLE IF NOT EXISTS status_totals (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    visitors BIGINT NOT NULL DEFAULT 0
);
INSERT INTO status_totals (id, visitors)
SELECT TRUE, COUNT(*) FROM status_visitors
ON CONFLICT (id) DO NOTHING;

-- Keys generated once by the first process that needs them (first writer wins).
CREATE TABLE IF NOT EXISTS status_keys (
    name TEXT PRIMARY KEY,
    key BYTEA NOT NULL CHECK (length(key) >= 32)
);

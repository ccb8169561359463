-- Status page visits (issue 11); see the PostgreSQL migration of the same name.
CREATE TABLE IF NOT EXISTS status_visitors (
    visitor BLOB PRIMARY KEY CHECK (length(visitor) = 32),
    visits INTEGER NOT NULL CHECK (visits > 0),
    first_visit TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_visit TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS status_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    visitors INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO status_totals (id, visitors) SELECT 1, COUNT(*) FROM status_visitors;

-- SQLite has no data-modifying CTEs: a trigger on a new visitor row keeps the total,
-- inside the upsert statement itself.
CREATE TRIGGER IF NOT EXISTS status_visitors_total AFTER INSERT ON status_visitors
BEGIN
    UPDATE status_totals SET visitors = visitors + 1 WHERE id = 1;
END;

CREATE TABLE IF NOT EXISTS status_keys (
    name TEXT PRIMARY KEY,
    key BLOB NOT NULL CHECK (length(key) >= 32)
);

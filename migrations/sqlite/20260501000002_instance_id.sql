-- A random id for this database file, so that the collector's spool can name the database
-- it was written for (PostgreSQL has its system identifier; docs/feed.md, "Spool identity").
-- A copy of the file is the same database and keeps the id.
CREATE TABLE IF NOT EXISTS pricehub_instance (
    id         TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO pricehub_instance (id)
    SELECT lower(hex(randomblob(16))) WHERE NOT EXISTS (SELECT 1 FROM pricehub_instance);

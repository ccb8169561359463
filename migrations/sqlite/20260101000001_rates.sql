-- Rates schema for the embedded default (same tables as the original PostgreSQL dump).
CREATE TABLE IF NOT EXISTS regions (
    slug        TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    parent_slug TEXT REFERENCES regions (slug)
);

CREATE TABLE IF NOT EXISTS ports (
    code        TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    parent_slug TEXT NOT NULL REFERENCES regions (slug)
);

CREATE TABLE IF NOT EXISTS prices (
    orig_code TEXT    NOT NULL REFERENCES ports (code),
    dest_code TEXT    NOT NULL REFERENCES ports (code),
    day       DATE    NOT NULL,
    price     INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS prices_lane_day_idx ON prices (orig_code, dest_code, day);
CREATE INDEX IF NOT EXISTS ports_parent_slug_idx ON ports (parent_slug);

-- Derived: one row per lane and day (sum and number of samples), read by GET /rates.
CREATE TABLE IF NOT EXISTS price_daily (
    orig_code TEXT    NOT NULL,
    dest_code TEXT    NOT NULL,
    day       DATE    NOT NULL,
    total     INTEGER NOT NULL,
    samples   INTEGER NOT NULL,
    PRIMARY KEY (orig_code, dest_code, day)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rates_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT OR IGNORE INTO rates_generation (id, generation) VALUES (1, 0);

-- SQLite has only row triggers; they run inside the writing transaction all the same.
CREATE TRIGGER IF NOT EXISTS price_daily_insert AFTER INSERT ON prices BEGIN
    INSERT INTO price_daily (orig_code, dest_code, day, total, samples)
    VALUES (NEW.orig_code, NEW.dest_code, NEW.day, NEW.price, 1)
    ON CONFLICT (orig_code, dest_code, day)
    DO UPDATE SET total = total + excluded.total, samples = samples + 1;
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER IF NOT EXISTS price_daily_delete AFTER DELETE ON prices BEGIN
    UPDATE price_daily SET total = total - OLD.price, samples = samples - 1
    WHERE orig_code = OLD.orig_code AND dest_code = OLD.dest_code AND day = OLD.day;
    DELETE FROM price_daily
    WHERE orig_code = OLD.orig_code AND dest_code = OLD.dest_code AND day = OLD.day
      AND samples <= 0;
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER IF NOT EXISTS price_daily_update AFTER UPDATE ON prices BEGIN
    UPDATE price_daily SET total = total - OLD.price, samples = samples - 1
    WHERE orig_code = OLD.orig_code AND dest_code = OLD.dest_code AND day = OLD.day;
    DELETE FROM price_daily
    WHERE orig_code = OLD.orig_code AND dest_code = OLD.dest_code AND day = OLD.day
      AND samples <= 0;
    INSERT INTO price_daily (orig_code, dest_code, day, total, samples)
    VALUES (NEW.orig_code, NEW.dest_code, NEW.day, NEW.price, 1)
    ON CONFLICT (orig_code, dest_code, day)
    DO UPDATE SET total = total + excluded.total, samples = samples + 1;
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER IF NOT EXISTS ports_insert AFTER INSERT ON ports BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS ports_update AFTER UPDATE ON ports BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS ports_delete AFTER DELETE ON ports BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS regions_insert AFTER INSERT ON regions BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS regions_update AFTER UPDATE ON regions BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS regions_delete AFTER DELETE ON regions BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
END;

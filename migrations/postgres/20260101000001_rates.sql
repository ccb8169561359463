-- Keep "does not exist, skipping" notices of the DROP ... IF EXISTS below out of the logs.
SET LOCAL client_min_messages = warning;

-- Rates schema. CREATE ... IF NOT EXISTS adopts a database already loaded the original
-- way (`psql < rates.sql`): the dump's tables, keys and foreign keys are kept as they are.
CREATE TABLE IF NOT EXISTS regions (
    slug        text PRIMARY KEY,
    name        text NOT NULL,
    parent_slug text REFERENCES regions (slug)
);

CREATE TABLE IF NOT EXISTS ports (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    parent_slug text NOT NULL REFERENCES regions (slug)
);

CREATE TABLE IF NOT EXISTS prices (
    orig_code text    NOT NULL REFERENCES ports (code),
    dest_code text    NOT NULL REFERENCES ports (code),
    day       date    NOT NULL,
    price     integer NOT NULL
);

-- Lets imports and deletes find a lane's rows without scanning the table.
CREATE INDEX IF NOT EXISTS prices_lane_day_idx ON prices (orig_code, dest_code, day);
CREATE INDEX IF NOT EXISTS ports_parent_slug_idx ON ports (parent_slug);

-- Derived: one row per lane and day with the sum and number of samples. `GET /rates`
-- reads this instead of scanning `prices` (the original scanned every price per request).
CREATE TABLE IF NOT EXISTS price_daily (
    orig_code text   NOT NULL,
    dest_code text   NOT NULL,
    day       date   NOT NULL,
    total     bigint NOT NULL,
    samples   bigint NOT NULL,
    PRIMARY KEY (orig_code, dest_code, day)
);

-- Bumped by every statement that changes prices, ports or regions: readers compare it
-- with the generation their cache was built from.
CREATE TABLE IF NOT EXISTS rates_generation (
    id         smallint PRIMARY KEY CHECK (id = 1),
    generation bigint   NOT NULL
);
INSERT INTO rates_generation (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Backfill from the prices that are already there (a database loaded from the dump).
INSERT INTO price_daily (orig_code, dest_code, day, total, samples)
SELECT orig_code, dest_code, day, SUM(price), COUNT(*)
FROM prices
GROUP BY orig_code, dest_code, day
ON CONFLICT (orig_code, dest_code, day) DO NOTHING;

-- The derived table is maintained inside the transaction that writes `prices`, whoever
-- writes it (pricehub, psql, a COPY): statement-level triggers with transition tables
-- cost one grouped upsert per statement, not one per row.
CREATE OR REPLACE FUNCTION pricehub_rates_changed(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rates_generation SET generation = generation + 1 WHERE id = 1;
    PERFORM pg_notify('pricehub_rates', what);
END
$$;

CREATE OR REPLACE FUNCTION pricehub_price_daily_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    INSERT INTO price_daily AS d (orig_code, dest_code, day, total, samples)
    SELECT orig_code, dest_code, day, SUM(price), COUNT(*)
    FROM new_rows
    GROUP BY orig_code, dest_code, day
    ON CONFLICT (orig_code, dest_code, day)
    DO UPDATE SET total = d.total + EXCLUDED.total, samples = d.samples + EXCLUDED.samples;
    PERFORM pricehub_rates_changed('prices');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pricehub_price_daily_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    WITH gone AS (
        SELECT orig_code, dest_code, day, SUM(price) AS total, COUNT(*) AS samples
        FROM old_rows
        GROUP BY orig_code, dest_code, day
    )
    UPDATE price_daily d
    SET total = d.total - gone.total, samples = d.samples - gone.samples
    FROM gone
    WHERE d.orig_code = gone.orig_code AND d.dest_code = gone.dest_code AND d.day = gone.day;
    DELETE FROM price_daily d
    USING (SELECT DISTINCT orig_code, dest_code, day FROM old_rows) gone
    WHERE d.orig_code = gone.orig_code AND d.dest_code = gone.dest_code AND d.day = gone.day
      AND d.samples <= 0;
    PERFORM pricehub_rates_changed('prices');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pricehub_price_daily_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE price_daily;
    PERFORM pricehub_rates_changed('prices');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pricehub_catalog_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pricehub_rates_changed('catalog');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS price_daily_insert ON prices;
CREATE TRIGGER price_daily_insert AFTER INSERT ON prices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_add();

DROP TRIGGER IF EXISTS price_daily_delete ON prices;
CREATE TRIGGER price_daily_delete AFTER DELETE ON prices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_remove();

-- An UPDATE is a removal of the old rows and an addition of the new ones.
DROP TRIGGER IF EXISTS price_daily_update_remove ON prices;
CREATE TRIGGER price_daily_update_remove AFTER UPDATE ON prices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_remove();
DROP TRIGGER IF EXISTS price_daily_update_add ON prices;
CREATE TRIGGER price_daily_update_add AFTER UPDATE ON prices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_add();

DROP TRIGGER IF EXISTS price_daily_truncate ON prices;
CREATE TRIGGER price_daily_truncate AFTER TRUNCATE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_price_daily_truncate();

DROP TRIGGER IF EXISTS ports_changed ON ports;
CREATE TRIGGER ports_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ports
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_catalog_changed();
DROP TRIGGER IF EXISTS regions_changed ON regions;
CREATE TRIGGER regions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION pricehub_catalog_changed();

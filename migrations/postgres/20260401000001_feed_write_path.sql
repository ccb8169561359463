-- Feed write path for 200,000 trades/s (SPEC §1 performance target; docs/feed.md).
--
-- Measured with psql \copy of 2.5 M trade rows on the 2-core machine: heap only 1.55 M
-- rows/s; + bigserial id 0.96 M; + the (symbol, ts_ms, id) index 0.38 M; + primary key
-- 0.25 M; + unique receipt key and the per-statement instruments trigger 0.13 M. The reads
-- need the symbol index; the rest was per-row work that is cheaper per batch:
--
-- * Dedupe by receipt RANGES instead of a unique index on (run_id, seq). A collector run
--   numbers its trades 0, 1, 2, … and writes them in contiguous batches, so what a
--   transaction stored is described by (run_id, first_seq, last_seq) rows in
--   feed_receipts, written in the same transaction as the COPY. Before committing, the
--   writer takes a per-run advisory lock and checks that none of its ranges was already
--   committed; if one was (a replay after a crash or an ambiguous commit), it rolls back
--   and writes only the trades not yet covered. The lock is taken after the COPY, so
--   batches of one run still copy in parallel; only the check and the commit queue.
-- * instruments (latest price, tick count) is upserted once per batch by the same
--   function from per-symbol aggregates the collector computes, instead of a trigger
--   capturing a transition table of every row.
-- * trades.id stays (tie-break of equal timestamps, cursor of the trades API) but is not
--   a primary key: nothing looks a trade up by id, and the sequence makes it unique.
--
-- The trades table is written by the collector only; a writer that bypasses
-- pricehub_feed_commit must maintain instruments and feed_receipts itself.

DROP TRIGGER IF EXISTS instruments_insert ON trades;
DROP FUNCTION IF EXISTS pricehub_instruments_add();
ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_pkey;
DROP INDEX IF EXISTS trades_receipt_key;
ALTER TABLE instruments DROP COLUMN IF EXISTS last_id;

CREATE TABLE IF NOT EXISTS feed_receipts (
    run_id       bigint      NOT NULL,
    first_seq    bigint      NOT NULL,
    last_seq     bigint      NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    CHECK (first_seq <= last_seq),
    -- Ranges of a run never overlap, so last_seq identifies one; the overlap check
    -- (last_seq >= first AND first_seq <= last) scans only the ranges after `first`.
    PRIMARY KEY (run_id, last_seq)
);

-- Backfill from trades stored before this migration: the islands of consecutive seqs.
INSERT INTO feed_receipts (run_id, first_seq, last_seq)
SELECT run_id, MIN(seq), MAX(seq)
FROM (SELECT run_id, seq, seq - ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY seq) AS island
      FROM trades) s
GROUP BY run_id, island
ON CONFLICT DO NOTHING;

-- The per-run locks serializing the bookkeeping of a run's batches: one per run (key
-- space 7303; collisions of the low 31 bits only serialize), taken in a fixed order so
-- that two writers cannot deadlock. Held until the transaction ends.
-- (plpgsql's PERFORM runs the query to its end; a SQL function returning void might stop
-- at the first row, i.e. the first lock.)
CREATE OR REPLACE FUNCTION pricehub_feed_lock_runs(run_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7303, k)
    FROM (SELECT DISTINCT (u & 2147483647)::int AS k FROM unnest(run_ids) u ORDER BY 1) s;
END
$$;

-- Called by the collector inside the batch transaction, after its COPY. Ranges are
-- (run_ids[k], firsts[k], lasts[k]); per-symbol aggregates of the batch are symbols[k]
-- with counts[k] trades, the latest one at ts_ms[k] with prices[k]. Returns false, having
-- written nothing, when a range overlaps one already committed: the caller rolls back.
CREATE OR REPLACE FUNCTION pricehub_feed_commit(
    run_ids bigint[], firsts bigint[], lasts bigint[],
    symbols text[], counts bigint[], prices double precision[], ts_ms bigint[]
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM pricehub_feed_lock_runs(run_ids);
    IF EXISTS (
        SELECT 1
        FROM unnest(run_ids, firsts, lasts) AS b(run_id, first_seq, last_seq)
        JOIN feed_receipts f
          ON f.run_id = b.run_id AND f.last_seq >= b.first_seq AND f.first_seq <= b.last_seq
    ) THEN
        RETURN false;
    END IF;
    FOR r IN SELECT * FROM unnest(run_ids, firsts, lasts) AS b(run_id, first_seq, last_seq) LOOP
        -- Extend the range this one continues (the usual case: one row per run).
        UPDATE feed_receipts SET last_seq = r.last_seq, committed_at = now()
        WHERE run_id = r.run_id AND last_seq = r.first_seq - 1;
        IF NOT FOUND THEN
            INSERT INTO feed_receipts (run_id, first_seq, last_seq)
            VALUES (r.run_id, r.first_seq, r.last_seq);
        END IF;
    END LOOP;
    INSERT INTO instruments AS i (symbol, last_price, last_ts_ms, ticks)
    SELECT * FROM unnest(symbols, prices, ts_ms, counts)
    ON CONFLICT (symbol) DO UPDATE SET
        ticks = i.ticks + EXCLUDED.ticks,
        -- Equal times: the batch committed later is the later receipt.
        last_price = CASE WHEN EXCLUDED.last_ts_ms >= i.last_ts_ms
                          THEN EXCLUDED.last_price ELSE i.last_price END,
        last_ts_ms = GREATEST(i.last_ts_ms, EXCLUDED.last_ts_ms);
    RETURN true;
END
$$;

-- pgbench script: the original rates application's query for the README parameters
-- (date_from=2021-01-01, date_to=2021-01-31, orig_code=CNGGZ, dest_code=EETLL).
--
-- This is a RECONSTRUCTION in the spirit of the original Flask app (Xeneta ratestask /
-- operations-task), not a verbatim copy: one row per day of the range from
-- generate_series, LEFT JOINed to the prices of the pair, grouped by day, newest day
-- first, with the count and the average price (NULL when fewer than 3 prices, the
-- original's rule). Its output for these parameters equals the original's response in
-- ../shared/data/rates-vectors.json (31 rows; bench/rates.sh checks the row count).
--
-- Run it against a database loaded the original way (`psql -f rates-2021.sql`): the
-- dump has no index on prices, so every execution scans all 56,689 price rows.
-- pricehub's migrations add prices_lane_day_idx, which would flatter this query;
-- bench/rates.sh therefore keeps a separate database without them for this script.
--
-- pgbench's \set only takes numeric expressions, so the parameters are literals.
SELECT d.day::date AS day,
       COUNT(p.price) AS count,
       CASE WHEN COUNT(p.price) < 3 THEN NULL ELSE AVG(p.price) END AS price
FROM generate_series('2021-01-01'::date, '2021-01-31'::date, interval '1 day') AS d(day)
LEFT JOIN prices p
       ON p.day = d.day::date
      AND p.orig_code = 'CNGGZ'
      AND p.dest_code = 'EETLL'
GROUP BY d.day
ORDER BY d.day DESC;

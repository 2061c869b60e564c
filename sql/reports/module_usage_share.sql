-- module_usage_share(from DATE, to DATE, org_id VARCHAR = ''): per day and module: minutes spent and share of the day's time in percent (each day sums to 100), of every account (org_id '') or of one
-- params: from DATE, to DATE, org_id VARCHAR
-- order: day, share_pct DESC, module
WITH d AS (
    SELECT event_date AS day, coalesce(module, '(none)') AS module, sum(duration_ms) AS ms
    FROM events
    WHERE event_date >= $1 AND event_date <= $2 AND duration_ms > 0 AND ($3 = '' OR org_id = $3)
    GROUP BY event_date, coalesce(module, '(none)')
)
SELECT
    day,
    module,
    ms / 60000.0 AS duration_min,
    100.0 * ms / sum(ms) OVER (PARTITION BY day) AS share_pct
FROM d

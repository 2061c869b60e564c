-- alerts(as_of DATE, lookback INTERVAL = '28 days', days BIGINT = 7): which accounts need a CSM now, and since when: one row per account and rule of the config's [[alerts]] (or the default rules) that holds on as_of, with first_seen, the first day since which it has held every day (within lookback), its severity, and the reason with the numbers that triggered it
-- order: severity_rank, first_seen, org_id, rule
-- Each day of the lookback scored as health_scores(day, days) scores it.
-- stage hist
SELECT * FROM health_history({{lookback_from}}, {{as_of}}, '1 day', {{days}});
-- What the rules may look at: the scores, the account's renewal and ARR,
-- and its MRR on the day and `lookback` days before (NULL without subscriptions;
-- summed as decimals, so that the figures do not depend on the rows' order).
-- stage facts
SELECT
    h.*,
    {{days}} AS period_days,
    {{lookback_days}} AS lookback_days,
    CASE WHEN h.health_prev < ${health.red_below} THEN 'red' WHEN h.health_prev < ${health.green_from} THEN 'yellow' ELSE 'green' END AS band_prev,
    a.arr,
    a.renewal_date,
    CAST(a.renewal_date AS BIGINT) - CAST(h.as_of AS BIGINT) AS days_to_renewal,
    CAST(m.mrr AS DOUBLE) AS mrr,
    CAST(m.mrr - m.mrr_before AS DOUBLE) AS mrr_change
FROM hist h
LEFT JOIN accounts a ON a.org_id = h.org_id
LEFT JOIN (
    SELECT
        d.as_of,
        s.org_id,
        sum(CASE WHEN s.starts_on <= d.as_of AND (s.ends_on IS NULL OR s.ends_on > d.as_of) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr,
        sum(CASE WHEN s.starts_on <= d.as_of - {{lookback_days}} AND (s.ends_on IS NULL OR s.ends_on > d.as_of - {{lookback_days}}) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr_before
    FROM (SELECT DISTINCT as_of FROM hist) d
    CROSS JOIN subscriptions s
    GROUP BY d.as_of, s.org_id
) m ON m.org_id = h.org_id AND m.as_of = h.as_of;
${alerts.stages}
WITH hits AS (
    ${alerts.union}
),
-- A rule holds since the day after it last did not (or since the account's
-- first day in the lookback, when it held on every one).
runs AS (
    SELECT rule, org_id, max(CASE WHEN NOT hit THEN as_of END) AS last_miss, min(as_of) AS first_day
    FROM hits
    GROUP BY rule, org_id
)
SELECT
    h.org_id,
    f.name,
    f.csm,
    h.rule,
    h.severity,
    h.severity_rank,
    CASE WHEN r.last_miss IS NULL THEN r.first_day ELSE CAST(r.last_miss + INTERVAL '1 day' AS DATE) END AS first_seen,
    r.last_miss IS NULL AS held_all_lookback,
    h.reason,
    f.health,
    f.band,
    f.days_to_renewal,
    f.mrr
FROM hits h
JOIN runs r ON r.rule = h.rule AND r.org_id = h.org_id
JOIN facts f ON f.org_id = h.org_id AND f.as_of = h.as_of
WHERE h.as_of = {{as_of}} AND h.hit

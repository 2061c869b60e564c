-- intervention_effect(days BIGINT): for each CSM intervention: visits per day in the `days` before and after it (the day itself left out; the after window ends with the data), against accounts without interventions matched on plan and prior trend (or on trend alone when no account of the plan matches; prior trend = visits before against the `days` before that); effect = the account's change minus the matched accounts' average change, in percentage points; and the same for MRR, from the intervention day to 90 days later (cut at the data's end), where subscriptions exist
-- order: at, org_id
-- stage daily
-- Visits per account and day, from the first row of each run of a visit's
-- rows on a day (first_of_run; sorted files hold them together): the
-- distinct count is the same, and far fewer rows are hashed.
SELECT org_id, CAST(event_date AS INT) AS dn, count(DISTINCT session_id) AS visits
FROM events
WHERE first_of_run(true, org_id, session_id, event_date)
GROUP BY org_id, event_date;
-- stage cum
-- Visits up to and including each day, per account: a window's visits are a
-- difference of two of these, whatever its length.
WITH bounds AS (
    SELECT min(dn) AS first_dn, max(dn) AS last_dn FROM daily
),
days AS (
    SELECT unnest(range(first_dn - 1, last_dn + 1)) AS dn FROM bounds
),
orgs AS (
    SELECT org_id FROM accounts UNION SELECT org_id FROM interventions
)
SELECT o.org_id, d.dn, sum(coalesce(v.visits, 0)) OVER (PARTITION BY o.org_id ORDER BY d.dn ROWS UNBOUNDED PRECEDING) AS upto
FROM orgs o
CROSS JOIN days d
LEFT JOIN daily v ON v.org_id = o.org_id AND v.dn = d.dn;
WITH bounds AS (
    SELECT min(dn) AS first_dn, max(dn) AS last_dn FROM daily
),
iv AS (
    SELECT i.org_id, i.csm, i.kind, i.at, CAST(CAST(i.at AS DATE) AS INT) AS dn, least({{days}}, b.last_dn - CAST(CAST(i.at AS DATE) AS INT)) AS after_days
    FROM interventions i CROSS JOIN bounds b
),
accts AS (
    SELECT o.org_id, a.plan, t.org_id IS NOT NULL AS is_treated
    FROM (SELECT org_id FROM accounts UNION SELECT org_id FROM interventions) o
    LEFT JOIN accounts a ON a.org_id = o.org_id
    LEFT JOIN (SELECT DISTINCT org_id FROM interventions) t ON t.org_id = o.org_id
),
-- The windows of every intervention day, for the account itself and for every
-- account without interventions; day numbers are clamped into the data.
cand AS (
    SELECT x.org_id, x.plan, x.is_treated, w.dn, w.after_days, b.first_dn, b.last_dn
    FROM (SELECT DISTINCT dn, after_days FROM iv) w
    CROSS JOIN accts x
    CROSS JOIN bounds b
    LEFT JOIN (SELECT DISTINCT org_id, dn FROM iv) hit ON hit.org_id = x.org_id AND hit.dn = w.dn
    WHERE NOT x.is_treated OR hit.org_id IS NOT NULL
),
sums AS (
    SELECT
        c.org_id, c.plan, c.is_treated, c.dn, c.after_days,
        b.upto - a.upto AS prior,
        d.upto - b.upto AS before,
        e.upto - f.upto AS after
    FROM cand c
    JOIN cum a ON a.org_id = c.org_id AND a.dn = greatest(c.dn - 2 * {{days}} - 1, c.first_dn - 1)
    JOIN cum b ON b.org_id = c.org_id AND b.dn = greatest(c.dn - {{days}} - 1, c.first_dn - 1)
    JOIN cum d ON d.org_id = c.org_id AND d.dn = greatest(c.dn - 1, c.first_dn - 1)
    JOIN cum f ON f.org_id = c.org_id AND f.dn = least(c.dn, c.last_dn)
    JOIN cum e ON e.org_id = c.org_id AND e.dn = least(c.dn + c.after_days, c.last_dn)
),
rates AS (
    SELECT
        *,
        CAST(before AS DOUBLE) / {{days}} AS before_per_day,
        CASE WHEN after_days > 0 THEN CAST(after AS DOUBLE) / after_days END AS after_per_day,
        change_pct(before, prior) AS prior_trend_pct,
        CASE WHEN after_days > 0 THEN change_pct(CAST(after AS DOUBLE) / after_days, CAST(before AS DOUBLE) / {{days}}) END AS change,
        -- Prior trend buckets: fell by half or more, fell by a fifth or more, about flat, grew.
        CASE WHEN prior = 0 THEN NULL
             WHEN change_pct(before, prior) <= -50 THEN 0
             WHEN change_pct(before, prior) <= -20 THEN 1
             WHEN change_pct(before, prior) < 20 THEN 2
             ELSE 3 END AS bucket
    FROM sums
),
treated AS (
    SELECT iv.org_id, iv.csm, iv.kind, iv.at, r.*
    FROM iv JOIN rates r ON r.org_id = iv.org_id AND r.dn = iv.dn AND r.is_treated
),
matches AS (
    -- Same plan and prior-trend bucket; where no account of the plan matches, the bucket alone.
    SELECT
        t.org_id, t.at,
        count(CASE WHEN r.plan = t.plan THEN r.org_id END) AS plan_controls,
        avg(CASE WHEN r.plan = t.plan THEN r.change END) AS plan_change,
        count(r.org_id) AS trend_controls,
        avg(r.change) AS trend_change
    FROM treated t
    LEFT JOIN rates r ON NOT r.is_treated AND r.dn = t.dn AND r.bucket = t.bucket AND r.change IS NOT NULL
    GROUP BY t.org_id, t.at
),
controls AS (
    SELECT
        org_id, at,
        CASE WHEN plan_controls > 0 THEN plan_controls ELSE trend_controls END AS controls,
        CASE WHEN plan_controls > 0 THEN plan_change ELSE trend_change END AS control_change,
        CASE WHEN plan_controls > 0 THEN 'plan and trend' WHEN trend_controls > 0 THEN 'trend' END AS matched_on
    FROM matches
),
-- MRR (summed as decimals) of every account on each intervention day and 90
-- days later, cut at the data's end; an account paying nothing on the day has
-- no MRR change.
mrr_on AS (
    SELECT
        w.dn, w.end_dn, s.org_id,
        sum(CASE WHEN CAST(s.starts_on AS INT) <= w.dn AND (s.ends_on IS NULL OR CAST(s.ends_on AS INT) > w.dn) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr_before,
        sum(CASE WHEN CAST(s.starts_on AS INT) <= w.end_dn AND (s.ends_on IS NULL OR CAST(s.ends_on AS INT) > w.end_dn) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr_after
    FROM (SELECT DISTINCT iv.dn, least(iv.dn + 90, b.last_dn) AS end_dn FROM iv CROSS JOIN bounds b) w
    CROSS JOIN subscriptions s
    GROUP BY w.dn, w.end_dn, s.org_id
),
mrr_rates AS (
    SELECT dn, end_dn, org_id, CAST(mrr_before AS DOUBLE) AS mrr_before, CAST(mrr_after AS DOUBLE) AS mrr_after,
        change_pct(CAST(mrr_after AS DOUBLE), CAST(mrr_before AS DOUBLE)) AS mrr_change
    FROM mrr_on
),
-- The MRR change of the accounts the visits were matched against (those of them that pay).
mrr_matches AS (
    SELECT
        t.org_id, t.at,
        count(CASE WHEN r.plan = t.plan THEN m.mrr_change END) AS plan_controls,
        avg(CASE WHEN r.plan = t.plan THEN m.mrr_change END) AS plan_change,
        count(m.mrr_change) AS trend_controls,
        avg(m.mrr_change) AS trend_change
    FROM treated t
    JOIN rates r ON NOT r.is_treated AND r.dn = t.dn AND r.bucket = t.bucket AND r.change IS NOT NULL
    JOIN mrr_rates m ON m.org_id = r.org_id AND m.dn = t.dn AND m.mrr_change IS NOT NULL
    GROUP BY t.org_id, t.at
),
-- The same choice of matches as for visits.
mrr_controls AS (
    SELECT
        c.org_id, c.at,
        CASE WHEN c.matched_on = 'plan and trend' THEN coalesce(mm.plan_controls, 0) WHEN c.matched_on = 'trend' THEN coalesce(mm.trend_controls, 0) ELSE 0 END AS controls,
        CASE WHEN c.matched_on = 'plan and trend' THEN mm.plan_change WHEN c.matched_on = 'trend' THEN mm.trend_change END AS control_change
    FROM controls c
    LEFT JOIN mrr_matches mm ON mm.org_id = c.org_id AND mm.at = c.at
)
SELECT
    t.org_id,
    t.csm,
    t.kind,
    t.at,
    t.before_per_day AS visits_per_day_before,
    t.after_per_day AS visits_per_day_after,
    CAST(t.after_days AS BIGINT) AS days_after,
    t.change AS change_pct,
    t.prior_trend_pct,
    t.plan,
    CAST(c.controls AS BIGINT) AS matched_accounts,
    c.control_change AS matched_change_pct,
    c.matched_on,
    t.change - c.control_change AS effect_pct_points,
    m.mrr_before,
    m.mrr_after,
    CAST(least(t.dn + 90, (SELECT max(dn) FROM daily)) - t.dn AS BIGINT) AS mrr_days_after,
    m.mrr_change AS mrr_change_pct,
    CAST(mc.controls AS BIGINT) AS matched_mrr_accounts,
    mc.control_change AS matched_mrr_change_pct,
    m.mrr_change - mc.control_change AS mrr_effect_pct_points
FROM treated t
JOIN controls c ON c.org_id = t.org_id AND c.at = t.at
JOIN mrr_controls mc ON mc.org_id = t.org_id AND mc.at = t.at
LEFT JOIN mrr_rates m ON m.org_id = t.org_id AND m.dn = t.dn

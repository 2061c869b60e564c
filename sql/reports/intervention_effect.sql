-- intervention_effect(days BIGINT): for each CSM intervention: visits per day in the `days` before and after it (the day itself left out), against accounts without interventions matched on plan and prior trend (or on trend alone when no account of the plan matches) (visits before against the `days` before that); effect = the account's change minus the matched accounts' average change, in percentage points
-- params: days BIGINT
-- order: at, org_id
WITH daily AS (
    SELECT org_id, CAST(event_date AS INT) AS dn, count(DISTINCT session_id) AS visits
    FROM events
    GROUP BY org_id, event_date
),
bounds AS (
    SELECT max(dn) AS last_dn FROM daily
),
iv AS (
    SELECT i.org_id, i.csm, i.kind, i.at, CAST(CAST(i.at AS DATE) AS INT) AS dn, least($1, b.last_dn - CAST(CAST(i.at AS DATE) AS INT)) AS after_days
    FROM interventions i CROSS JOIN bounds b
),
untouched AS (
    SELECT org_id, plan FROM accounts WHERE org_id NOT IN (SELECT org_id FROM interventions)
),
-- Each intervention against itself and every untouched account, over the same days.
cand AS (
    SELECT iv.org_id AS treated, iv.at, iv.dn, iv.after_days, iv.org_id AS org_id, ta.plan, true AS is_treated
    FROM iv LEFT JOIN accounts ta ON ta.org_id = iv.org_id
    UNION ALL
    SELECT iv.org_id, iv.at, iv.dn, iv.after_days, u.org_id, u.plan, false
    FROM iv CROSS JOIN untouched u
),
sums AS (
    SELECT
        c.treated, c.at, c.org_id, c.plan, c.is_treated, c.after_days,
        coalesce(sum(CASE WHEN d.dn >= c.dn - 2 * $1 AND d.dn < c.dn - $1 THEN d.visits END), 0) AS prior,
        coalesce(sum(CASE WHEN d.dn >= c.dn - $1 AND d.dn < c.dn THEN d.visits END), 0) AS before,
        coalesce(sum(CASE WHEN d.dn > c.dn AND d.dn <= c.dn + c.after_days THEN d.visits END), 0) AS after
    FROM cand c
    LEFT JOIN daily d ON d.org_id = c.org_id AND d.dn >= c.dn - 2 * $1 AND d.dn <= c.dn + c.after_days
    GROUP BY c.treated, c.at, c.org_id, c.plan, c.is_treated, c.after_days
),
rates AS (
    SELECT
        *,
        CAST(before AS DOUBLE) / $1 AS before_per_day,
        CASE WHEN after_days > 0 THEN CAST(after AS DOUBLE) / after_days END AS after_per_day,
        change_pct(before, prior) AS prior_trend_pct,
        CASE WHEN after_days > 0 THEN change_pct(CAST(after AS DOUBLE) / after_days, CAST(before AS DOUBLE) / $1) END AS change,
        -- Prior trend buckets: fell by half or more, fell by a fifth or more, about flat, grew.
        CASE WHEN prior = 0 THEN NULL
             WHEN change_pct(before, prior) <= -50 THEN 0
             WHEN change_pct(before, prior) <= -20 THEN 1
             WHEN change_pct(before, prior) < 20 THEN 2
             ELSE 3 END AS bucket
    FROM sums
),
treated AS (
    SELECT * FROM rates WHERE is_treated
),
matches AS (
    -- Same plan and prior-trend bucket; where no account of the plan matches, the bucket alone.
    SELECT
        t.treated, t.at,
        count(CASE WHEN r.plan = t.plan THEN r.org_id END) AS plan_controls,
        avg(CASE WHEN r.plan = t.plan THEN r.change END) AS plan_change,
        count(r.org_id) AS trend_controls,
        avg(r.change) AS trend_change
    FROM treated t
    LEFT JOIN rates r ON NOT r.is_treated AND r.treated = t.treated AND r.at = t.at
        AND r.bucket = t.bucket AND r.change IS NOT NULL
    GROUP BY t.treated, t.at
),
controls AS (
    SELECT
        treated, at,
        CASE WHEN plan_controls > 0 THEN plan_controls ELSE trend_controls END AS controls,
        CASE WHEN plan_controls > 0 THEN plan_change ELSE trend_change END AS control_change,
        CASE WHEN plan_controls > 0 THEN 'plan and trend' WHEN trend_controls > 0 THEN 'trend' END AS matched_on
    FROM matches
)
SELECT
    t.org_id,
    i.csm,
    i.kind,
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
    t.change - c.control_change AS effect_pct_points
FROM treated t
JOIN controls c ON c.treated = t.treated AND c.at = t.at
JOIN interventions i ON i.org_id = t.org_id AND i.at = t.at

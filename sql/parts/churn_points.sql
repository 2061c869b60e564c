-- Shared by churn_model and churn_risk (`${part:churn_points}`): the stages
-- `hist` (every paying account scored every week from {{hist_from}} to
-- as_of) and `points` (per account and date: the model's features, its MRR
-- and whether it stopped paying within {{horizon}} days after).

-- stage hist
SELECT * FROM health_history({{hist_from}}, {{as_of}}, {{step}}, {{period_days}});
-- stage points
WITH dates AS (
    SELECT DISTINCT as_of FROM hist
),
-- MRR in force on each date (summed as decimals: the same on every run).
mrr AS (
    SELECT d.as_of, s.org_id, CAST(sum(CAST(s.mrr AS DECIMAL(38, 6))) AS DOUBLE) AS mrr
    FROM dates d
    JOIN subscriptions s ON s.starts_on <= d.as_of AND (s.ends_on IS NULL OR s.ends_on > d.as_of)
    GROUP BY d.as_of, s.org_id
),
-- The days an account stopped paying: a paid row's end with no paid row in force that day.
ends AS (
    SELECT DISTINCT org_id, ends_on AS day FROM subscriptions WHERE ends_on IS NOT NULL AND mrr > 0
),
stops AS (
    SELECT e.org_id, e.day
    FROM ends e
    LEFT JOIN subscriptions s ON s.org_id = e.org_id AND s.mrr > 0 AND s.starts_on <= e.day AND (s.ends_on IS NULL OR s.ends_on > e.day)
    GROUP BY e.org_id, e.day
    HAVING count(s.org_id) = 0
),
scored AS (
    SELECT h.*, m.mrr FROM hist h JOIN mrr m ON m.org_id = h.org_id AND m.as_of = h.as_of WHERE m.mrr > 0
),
labelled AS (
    SELECT p.as_of, p.org_id,
        -- Observed only when the whole horizon has passed by as_of.
        CASE WHEN p.as_of <= {{last_labelled}} THEN coalesce(max(CASE WHEN st.day > p.as_of AND CAST(st.day AS BIGINT) - CAST(p.as_of AS BIGINT) <= {{horizon}} THEN 1 ELSE 0 END), 0) = 1 END AS churned,
        min(CASE WHEN st.day > p.as_of THEN st.day END) AS stopped_on
    FROM scored p
    LEFT JOIN stops st ON st.org_id = p.org_id
    GROUP BY p.as_of, p.org_id
)
SELECT p.as_of, p.org_id, p.name, p.plan, p.csm, p.health, p.band, p.mrr, l.churned, l.stopped_on, {{feature_columns}}
FROM scored p
JOIN labelled l ON l.org_id = p.org_id AND l.as_of = p.as_of;

-- feature_retention(period VARCHAR = week, to DATE = last): for each event and each module: how many new users used it in their first period, and the share of them active in the next period against the share of the new users who did not use it
-- order: difference_pct_points DESC NULLS LAST, kind, feature
WITH act AS (
    SELECT user_id, {{idx}} AS p, event, module
    FROM events
    WHERE event_date <= {{to}}
),
up AS (
    SELECT DISTINCT user_id, p FROM act
),
firsts AS (
    SELECT user_id, min(p) AS p0 FROM up GROUP BY user_id
),
newcomers AS (
    -- New: first seen after the data's first period; the next period must be observed.
    SELECT f.user_id, f.p0, CASE WHEN nxt.user_id IS NULL THEN 0 ELSE 1 END AS retained
    FROM firsts f
    LEFT JOIN up nxt ON nxt.user_id = f.user_id AND nxt.p = f.p0 + 1
    WHERE f.p0 > {{first_idx}} AND f.p0 < {{last_idx}}
),
used AS (
    SELECT DISTINCT a.user_id, 'event' AS kind, CAST(a.event AS VARCHAR) AS feature
    FROM act a JOIN newcomers n ON n.user_id = a.user_id AND a.p = n.p0
    UNION
    SELECT DISTINCT a.user_id, 'module' AS kind, CAST(a.module AS VARCHAR) AS feature
    FROM act a JOIN newcomers n ON n.user_id = a.user_id AND a.p = n.p0
    WHERE a.module IS NOT NULL
),
totals AS (
    SELECT count(*) AS users, sum(retained) AS retained FROM newcomers
),
per AS (
    SELECT u.kind, u.feature, count(*) AS users_with, sum(n.retained) AS retained_with
    FROM used u JOIN newcomers n ON n.user_id = u.user_id
    GROUP BY u.kind, u.feature
)
SELECT
    kind,
    feature,
    CAST(users_with AS BIGINT) AS users_with,
    100.0 * retained_with / users_with AS retention_with_pct,
    CAST(t.users - users_with AS BIGINT) AS users_without,
    CASE WHEN t.users > users_with THEN 100.0 * (t.retained - retained_with) / (t.users - users_with) END AS retention_without_pct,
    100.0 * retained_with / users_with
        - CASE WHEN t.users > users_with THEN 100.0 * (t.retained - retained_with) / (t.users - users_with) END AS difference_pct_points
FROM per CROSS JOIN totals t

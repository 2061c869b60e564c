-- feature_retention(period VARCHAR = week, to DATE = last): for each event and each module: how many new users used it in their first period, and the share of them active in the next period against the share of the new users who did not use it
-- order: difference_pct_points DESC NULLS LAST, kind, feature
-- stage up
-- The periods each user was active in (first_of_run: one row of each run
-- of a user's rows on a day is enough for the DISTINCT).
SELECT DISTINCT user_id, {{idx}} AS p FROM events
WHERE event_date <= {{to}} AND first_of_run(event_date <= {{to}}, user_id, event_date);
-- stage newcomers
-- New: first seen after the data's first period; the next period must be observed.
WITH firsts AS (
    SELECT user_id, min(p) AS p0 FROM up GROUP BY user_id
)
SELECT f.user_id, f.p0, CASE WHEN nxt.user_id IS NULL THEN 0 ELSE 1 END AS retained
FROM firsts f
LEFT JOIN up nxt ON nxt.user_id = f.user_id AND nxt.p = f.p0 + 1
WHERE f.p0 > {{first_idx}} AND f.p0 < {{last_idx}};
-- stage first_use
-- What each newcomer did in their first period (the newcomers are the side the join holds).
SELECT DISTINCT n.user_id, CAST(e.event AS VARCHAR) AS event, CAST(e.module AS VARCHAR) AS module
FROM newcomers n
JOIN events e ON e.user_id = n.user_id AND {{idx}} = n.p0
WHERE e.event_date <= {{to}};
WITH used AS (
    SELECT DISTINCT user_id, 'event' AS kind, event AS feature FROM first_use
    UNION
    SELECT DISTINCT user_id, 'module' AS kind, module AS feature FROM first_use WHERE module IS NOT NULL
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

-- account_feature_usage(org_id VARCHAR, as_of DATE, days BIGINT): per module and event in one account over the days up to as_of: the users who did it and their share of the account's active users, the minutes of its page views, the same for the days before with the change in percent, and the day the account first did it
-- params: org_id VARCHAR, cur_start DATE, cur_end DATE, prev_start DATE
-- order: users DESC, minutes DESC, module, event
WITH base AS (
    SELECT user_id, coalesce(module, '(none)') AS module, event, duration_ms, event_date >= $2 AS cur
    FROM events
    WHERE org_id = $1 AND event_date >= $4 AND event_date <= $3
),
active AS (
    SELECT count(DISTINCT CASE WHEN cur THEN user_id END) AS n FROM base
),
m AS (
    SELECT
        module,
        event,
        count(DISTINCT CASE WHEN cur THEN user_id END) AS users,
        count(DISTINCT CASE WHEN NOT cur THEN user_id END) AS users_prev,
        coalesce(sum(CASE WHEN cur THEN duration_ms END), 0) / 60000.0 AS minutes,
        coalesce(sum(CASE WHEN NOT cur THEN duration_ms END), 0) / 60000.0 AS minutes_prev
    FROM base
    GROUP BY module, event
),
firsts AS (
    SELECT coalesce(module, '(none)') AS module, event, min(event_date) AS first_used
    FROM events
    WHERE org_id = $1 AND event_date <= $3
    GROUP BY coalesce(module, '(none)'), event
)
SELECT
    CAST(m.module AS VARCHAR) AS module,
    CAST(m.event AS VARCHAR) AS event,
    CAST(m.users AS BIGINT) AS users,
    100.0 * m.users / nullif(a.n, 0) AS user_share_pct,
    m.minutes,
    CAST(m.users_prev AS BIGINT) AS users_prev,
    change_pct(m.users, m.users_prev) AS users_change_pct,
    m.minutes_prev,
    change_pct(m.minutes, m.minutes_prev) AS minutes_change_pct,
    f.first_used
FROM m
CROSS JOIN active a
JOIN firsts f ON f.module = m.module AND f.event = m.event

-- activity_trend(from DATE, to DATE, org_id VARCHAR = '', user_id VARCHAR = ''): per day from `from` to `to`: active users, login users, visits, page views and minutes of use, of every account (org_id '') or of one, of every user (user_id '') or of one; a day without events is a row of zeros
-- params: from DATE, to DATE, org_id VARCHAR, user_id VARCHAR
-- order: day
WITH d AS (
    SELECT
        event_date AS day,
        count(DISTINCT user_id) AS active_users,
        count(DISTINCT CASE WHEN event = ${login} THEN user_id END) AS login_users,
        count(DISTINCT session_id) AS visits,
        sum(CASE WHEN event = ${page_view} THEN 1 ELSE 0 END) AS page_views,
        coalesce(sum(duration_ms), 0) / 60000.0 AS minutes
    FROM events
    WHERE event_date >= $1 AND event_date <= $2 AND ($3 = '' OR org_id = $3) AND ($4 = '' OR user_id = $4)
    GROUP BY event_date
),
days AS (
    SELECT CAST(t AS DATE) AS day
    FROM unnest(range(CAST($1 AS TIMESTAMP), CAST($2 AS TIMESTAMP) + INTERVAL '1 day', INTERVAL '1 day')) AS r(t)
)
SELECT
    days.day,
    coalesce(d.active_users, 0) AS active_users,
    coalesce(d.login_users, 0) AS login_users,
    coalesce(d.visits, 0) AS visits,
    coalesce(d.page_views, 0) AS page_views,
    coalesce(d.minutes, 0.0) AS minutes
FROM days LEFT JOIN d ON d.day = days.day

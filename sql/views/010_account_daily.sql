-- account_daily: per account and day: login users, active users, visits, page views, minutes of use
CREATE VIEW account_daily AS
SELECT
    org_id,
    event_date AS day,
    count(DISTINCT CASE WHEN event = ${login} THEN user_id END) AS login_users,
    count(DISTINCT user_id) AS active_users,
    count(DISTINCT session_id) AS visits,
    sum(CASE WHEN event = ${page_view} THEN 1 ELSE 0 END) AS page_views,
    coalesce(sum(duration_ms), 0) / 60000.0 AS duration_min
FROM events
GROUP BY org_id, event_date

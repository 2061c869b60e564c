-- user_daily: per user and day: logins, visits, page views, minutes of use, events
CREATE VIEW user_daily AS
SELECT
    org_id,
    user_id,
    event_date AS day,
    sum(CASE WHEN event = ${login} THEN 1 ELSE 0 END) AS logins,
    count(DISTINCT session_id) AS visits,
    sum(CASE WHEN event = ${page_view} THEN 1 ELSE 0 END) AS page_views,
    coalesce(sum(duration_ms), 0) / 60000.0 AS duration_min,
    count(*) AS events
FROM events
GROUP BY org_id, user_id, event_date

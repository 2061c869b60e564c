-- key_user_usage(org_id VARCHAR, as_of DATE, days BIGINT): per user of one account, key users first: logins, visits, page views, minutes, pages per visit, each with its change in percent
-- params: org_id VARCHAR, cur_start DATE, cur_end DATE, prev_start DATE
-- order: is_key_user DESC, duration_min DESC, user_id
WITH base AS (
    SELECT user_id, event, session_id, duration_ms, event_time, event_date >= $2 AS cur
    FROM events
    WHERE org_id = $1 AND event_date >= $4 AND event_date <= $3
),
m AS (
    SELECT
        user_id,
        sum(CASE WHEN cur AND event = ${login} THEN 1 ELSE 0 END) AS logins,
        sum(CASE WHEN NOT cur AND event = ${login} THEN 1 ELSE 0 END) AS logins_prev,
        count(DISTINCT CASE WHEN cur THEN session_id END) AS visits,
        count(DISTINCT CASE WHEN NOT cur THEN session_id END) AS visits_prev,
        sum(CASE WHEN cur AND event = ${page_view} THEN 1 ELSE 0 END) AS page_views,
        sum(CASE WHEN NOT cur AND event = ${page_view} THEN 1 ELSE 0 END) AS page_views_prev,
        coalesce(sum(CASE WHEN cur THEN duration_ms END), 0) / 60000.0 AS duration_min,
        coalesce(sum(CASE WHEN NOT cur THEN duration_ms END), 0) / 60000.0 AS duration_min_prev,
        max(event_time) AS last_seen
    FROM base
    GROUP BY user_id
),
joined AS (
    SELECT
        coalesce(u.user_id, m.user_id) AS user_id,
        u.name, u.role, coalesce(u.is_key_user, false) AS is_key_user,
        coalesce(m.logins, 0) AS logins,
        coalesce(m.logins_prev, 0) AS logins_prev,
        coalesce(m.visits, 0) AS visits,
        coalesce(m.visits_prev, 0) AS visits_prev,
        coalesce(m.page_views, 0) AS page_views,
        coalesce(m.page_views_prev, 0) AS page_views_prev,
        coalesce(m.duration_min, 0.0) AS duration_min,
        coalesce(m.duration_min_prev, 0.0) AS duration_min_prev,
        m.last_seen
    FROM (SELECT * FROM users WHERE org_id = $1) u
    FULL OUTER JOIN m ON u.user_id = m.user_id
)
SELECT
    user_id, name, role, is_key_user,
    logins, logins_prev, change_pct(logins, logins_prev) AS logins_change_pct,
    visits, visits_prev, change_pct(visits, visits_prev) AS visits_change_pct,
    page_views, page_views_prev, change_pct(page_views, page_views_prev) AS page_views_change_pct,
    duration_min, duration_min_prev, change_pct(duration_min, duration_min_prev) AS duration_min_change_pct,
    ratio(page_views, visits) AS pages_per_visit,
    last_seen
FROM joined

-- account_usage(as_of DATE, days BIGINT): per account: login users, visits, page views, minutes, pages per visit, each with its change in percent against the previous period
-- params: cur_start DATE, cur_end DATE, prev_start DATE
-- order: org_id
WITH base AS (
    SELECT org_id, user_id, event, session_id, duration_ms, event_date, event_date >= $1 AS cur
    FROM events
    WHERE event_date >= $3 AND event_date <= $2
),
-- One DISTINCT per aggregation, so each becomes a plain grouping (several
-- DISTINCTs in one would keep a hash set per account and period).
-- Visits from the first row of each run of a visit's rows on a day
-- (first_of_run; sorted files hold them together): the same count, far
-- fewer rows hashed.
visits AS (
    SELECT org_id, cur, count(DISTINCT session_id) AS visits
    FROM base
    WHERE first_of_run(event_date >= $3 AND event_date <= $2, org_id, session_id, event_date)
    GROUP BY org_id, cur
),
logins AS (
    SELECT org_id, cur, count(DISTINCT user_id) AS login_users
    FROM base
    WHERE event = ${login}
    GROUP BY org_id, cur
),
sums AS (
    SELECT
        org_id,
        cur,
        sum(CASE WHEN event = ${page_view} THEN 1 ELSE 0 END) AS page_views,
        coalesce(sum(duration_ms), 0) / 60000.0 AS duration_min
    FROM base
    GROUP BY org_id, cur
),
m AS (
    SELECT
        s.org_id,
        coalesce(sum(CASE WHEN s.cur THEN l.login_users END), 0) AS login_users,
        coalesce(sum(CASE WHEN NOT s.cur THEN l.login_users END), 0) AS login_users_prev,
        coalesce(sum(CASE WHEN s.cur THEN v.visits END), 0) AS visits,
        coalesce(sum(CASE WHEN NOT s.cur THEN v.visits END), 0) AS visits_prev,
        coalesce(sum(CASE WHEN s.cur THEN s.page_views END), 0) AS page_views,
        coalesce(sum(CASE WHEN NOT s.cur THEN s.page_views END), 0) AS page_views_prev,
        coalesce(sum(CASE WHEN s.cur THEN s.duration_min END), 0.0) AS duration_min,
        coalesce(sum(CASE WHEN NOT s.cur THEN s.duration_min END), 0.0) AS duration_min_prev
    FROM sums s
    LEFT JOIN visits v ON v.org_id = s.org_id AND v.cur = s.cur
    LEFT JOIN logins l ON l.org_id = s.org_id AND l.cur = s.cur
    GROUP BY s.org_id
),
joined AS (
    SELECT
        coalesce(a.org_id, m.org_id) AS org_id,
        a.name, a.plan, a.is_paid, a.csm,
        coalesce(m.login_users, 0) AS login_users,
        coalesce(m.login_users_prev, 0) AS login_users_prev,
        coalesce(m.visits, 0) AS visits,
        coalesce(m.visits_prev, 0) AS visits_prev,
        coalesce(m.page_views, 0) AS page_views,
        coalesce(m.page_views_prev, 0) AS page_views_prev,
        coalesce(m.duration_min, 0.0) AS duration_min,
        coalesce(m.duration_min_prev, 0.0) AS duration_min_prev
    FROM accounts a
    FULL OUTER JOIN m ON a.org_id = m.org_id
    WHERE m.org_id IS NOT NULL OR a.signup_time IS NULL OR CAST(a.signup_time AS DATE) <= $2
)
SELECT
    org_id, name, plan, is_paid, csm,
    login_users, login_users_prev, change_pct(login_users, login_users_prev) AS login_users_change_pct,
    visits, visits_prev, change_pct(visits, visits_prev) AS visits_change_pct,
    page_views, page_views_prev, change_pct(page_views, page_views_prev) AS page_views_change_pct,
    duration_min, duration_min_prev, change_pct(duration_min, duration_min_prev) AS duration_min_change_pct,
    ratio(page_views, visits) AS pages_per_visit,
    ratio(page_views_prev, visits_prev) AS pages_per_visit_prev,
    change_pct(ratio(page_views, visits), ratio(page_views_prev, visits_prev)) AS pages_per_visit_change_pct
FROM joined

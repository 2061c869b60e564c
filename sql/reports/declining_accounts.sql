-- declining_accounts(csms BIGINT = 1, per_csm BIGINT = 10, days BIGINT, as_of DATE): the csms x per_csm paying accounts whose activity (active users, visits, minutes) fell fastest over `days` against the period before, ranked, with each metric's change, the CSM, ARR, renewal date, and whether the drop is broad (most users stopped), concentrated (key users stopped) or in intensity (the same users do less)
-- params: cur_start DATE, cur_end DATE, prev_start DATE, csms BIGINT, per_csm BIGINT
-- order: rank
-- Per user: active in the period, in the one before; the users table is
-- joined to these rows, not to every event.
WITH per_user AS (
    SELECT p.org_id, p.user_id, coalesce(u.is_key_user, false) AS is_key, p.in_cur, p.in_prev
    FROM (
        SELECT org_id, user_id,
            max(CASE WHEN event_date >= $1 THEN 1 ELSE 0 END) AS in_cur,
            max(CASE WHEN event_date >= $1 THEN 0 ELSE 1 END) AS in_prev
        FROM events
        WHERE event_date >= $3 AND event_date <= $2
        GROUP BY org_id, user_id
    ) p
    LEFT JOIN users u ON u.user_id = p.user_id
),
people AS (
    SELECT
        org_id,
        sum(in_cur) AS users,
        sum(in_prev) AS users_prev,
        sum(CASE WHEN is_key THEN in_prev ELSE 0 END) AS key_users_prev,
        sum(CASE WHEN is_key AND in_prev = 1 AND in_cur = 0 THEN 1 ELSE 0 END) AS key_users_lost,
        sum(CASE WHEN NOT is_key THEN in_prev ELSE 0 END) AS other_users_prev,
        sum(CASE WHEN NOT is_key AND in_prev = 1 AND in_cur = 0 THEN 1 ELSE 0 END) AS other_users_lost
    FROM per_user
    GROUP BY org_id
),
visits AS (
    -- One DISTINCT per aggregation, so it becomes a plain grouping.
    SELECT org_id, event_date >= $1 AS cur, count(DISTINCT session_id) AS visits, coalesce(sum(duration_ms), 0) / 60000.0 AS minutes
    FROM events
    WHERE event_date >= $3 AND event_date <= $2
    GROUP BY 1, 2
),
activity AS (
    SELECT
        org_id,
        coalesce(sum(CASE WHEN cur THEN visits END), 0) AS visits,
        coalesce(sum(CASE WHEN NOT cur THEN visits END), 0) AS visits_prev,
        coalesce(sum(CASE WHEN cur THEN minutes END), 0.0) AS minutes,
        coalesce(sum(CASE WHEN NOT cur THEN minutes END), 0.0) AS minutes_prev
    FROM visits
    GROUP BY org_id
),
changes AS (
    SELECT
        a.org_id, a.name, a.plan, a.csm, a.arr, a.renewal_date,
        CAST(p.users AS BIGINT) AS active_users, CAST(p.users_prev AS BIGINT) AS active_users_prev,
        change_pct(p.users, p.users_prev) AS active_users_change_pct,
        x.visits, x.visits_prev, change_pct(x.visits, x.visits_prev) AS visits_change_pct,
        x.minutes, x.minutes_prev, change_pct(x.minutes, x.minutes_prev) AS minutes_change_pct,
        CAST(p.key_users_lost AS BIGINT) AS key_users_lost, CAST(p.key_users_prev AS BIGINT) AS key_users_prev,
        CAST(p.other_users_lost AS BIGINT) AS other_users_lost, CAST(p.other_users_prev AS BIGINT) AS other_users_prev
    FROM accounts a
    JOIN people p ON p.org_id = a.org_id
    JOIN activity x ON x.org_id = a.org_id
    WHERE a.is_paid AND p.users_prev >= ${declining.min_prev_users}
),
ranked AS (
    SELECT
        *,
        (coalesce(active_users_change_pct, 0) + coalesce(visits_change_pct, 0) + coalesce(minutes_change_pct, 0)) / 3.0 AS decline_pct
    FROM changes
)
SELECT
    CAST(row_number() OVER (ORDER BY decline_pct, org_id) AS BIGINT) AS rank,
    org_id, name, csm, plan, arr, renewal_date,
    CAST(renewal_date AS INT) - CAST($2 AS INT) AS days_to_renewal,
    decline_pct,
    CASE WHEN other_users_prev > 0 AND CAST(other_users_lost AS DOUBLE) / other_users_prev >= ${declining.lost_share} THEN 'broad'
         WHEN other_users_prev = 0 AND key_users_prev > 0 AND CAST(key_users_lost AS DOUBLE) / key_users_prev >= ${declining.lost_share} THEN 'broad'
         WHEN key_users_prev > 0 AND CAST(key_users_lost AS DOUBLE) / key_users_prev >= ${declining.lost_share} THEN 'concentrated'
         ELSE 'intensity' END AS pattern,
    active_users, active_users_prev, active_users_change_pct,
    visits, visits_prev, visits_change_pct,
    minutes, minutes_prev, minutes_change_pct,
    key_users_lost, key_users_prev, other_users_lost, other_users_prev
FROM ranked
WHERE decline_pct < 0
QUALIFY row_number() OVER (ORDER BY decline_pct, org_id) <= $4 * $5

-- user_lifecycle(period VARCHAR, unit VARCHAR = user): per day, week or month: active users (accounts, by account: any member's event counts) split into new (first period with activity), returning (active the period before too) and resurrected (back after a gap), and dormant users (active the period before, not in this one)
-- order: period_start
-- stage act
-- The periods each user was active in, computed once for the parts below,
-- from the days each was active on (event_date is event_time's UTC day, so
-- its day, week or month is event_time's; truncating a few rows per user
-- costs far less than truncating every event's time; first_of_run leaves
-- one row of each run of a user's rows on a day to the DISTINCT).
SELECT DISTINCT user_id, date_trunc({{period}}, arrow_cast(d, 'Timestamp(Microsecond, Some("UTC"))')) AS p
FROM (SELECT DISTINCT {{unit_col}} AS user_id, event_date AS d FROM events WHERE first_of_run(true, {{unit_col}}, event_date));
WITH firsts AS (
    SELECT user_id, min(p) AS first_p FROM act GROUP BY user_id
),
periods AS (
    SELECT DISTINCT p FROM act
),
flagged AS (
    SELECT
        a.p,
        a.user_id,
        a.p = f.first_p AS is_new,
        prev.user_id IS NOT NULL AS was_active
    FROM act a
    JOIN firsts f ON a.user_id = f.user_id
    LEFT JOIN act prev ON prev.user_id = a.user_id AND prev.p = date_trunc({{period}}, a.p - INTERVAL '1 day')
),
dormant AS (
    -- Active in a period and not in the next one, counted in the next one.
    SELECT date_trunc({{period}}, a.p + CAST(concat('1 ', {{period}}) AS INTERVAL)) AS p, count(*) AS dormant_users
    FROM act a
    LEFT JOIN act nxt ON nxt.user_id = a.user_id AND nxt.p = date_trunc({{period}}, a.p + CAST(concat('1 ', {{period}}) AS INTERVAL))
    WHERE nxt.user_id IS NULL
    GROUP BY 1
),
counts AS (
    SELECT
        p,
        count(*) AS active_users,
        sum(CASE WHEN is_new THEN 1 ELSE 0 END) AS new_users,
        sum(CASE WHEN NOT is_new AND was_active THEN 1 ELSE 0 END) AS returning_users,
        sum(CASE WHEN NOT is_new AND NOT was_active THEN 1 ELSE 0 END) AS resurrected_users
    FROM flagged
    GROUP BY p
)
SELECT
    CAST(periods.p AS DATE) AS period_start,
    coalesce(c.active_users, 0) AS active_users,
    coalesce(c.new_users, 0) AS new_users,
    coalesce(c.returning_users, 0) AS returning_users,
    coalesce(c.resurrected_users, 0) AS resurrected_users,
    coalesce(d.dormant_users, 0) AS dormant_users,
    ratio(coalesce(c.new_users, 0) + coalesce(c.resurrected_users, 0), d.dormant_users) AS quick_ratio
FROM periods
LEFT JOIN counts c ON c.p = periods.p
LEFT JOIN dormant d ON d.p = periods.p

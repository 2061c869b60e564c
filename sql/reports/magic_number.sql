-- magic_number(target VARCHAR = week2, window_days BIGINT = 7, max_n BIGINT = 10, unit VARCHAR = user): which early behaviour predicts that a new user (by account: a new account, any member's events counting) stays: for each event and n, "did it at least n times within window_days of signing up" against the target (week2: active on days 8-14; week:K; days:A-B; event:NAME[:D] within D days, default 28), with phi, positive predictive value, sensitivity, specificity, support and a label; the best n per event first, then the strongest pairs
-- order: CASE section WHEN 'best' THEN 0 WHEN 'pair' THEN 1 ELSE 2 END, phi DESC NULLS LAST, event, n, event2, n2
-- stage eligible
-- New users and whether their target window has passed.
WITH firsts AS (
    SELECT
        {{unit_col}} AS user_id,
        min(CAST(event_time AS BIGINT)) AS first_us,
        min(CASE WHEN event = ${signup} THEN CAST(event_time AS BIGINT) END) AS signup_event_us
    FROM events
    GROUP BY {{unit_col}}
),
signups AS (
    -- Sign-up time: the users (or accounts) table's, else the sign-up event's, else the first event's.
    SELECT f.user_id, coalesce(CAST(u.signup_time AS BIGINT), f.signup_event_us, f.first_us) AS t0
    FROM firsts f
    LEFT JOIN {{signup_table}} u ON u.{{unit_col}} = f.user_id
),
eligible AS (
    -- Only users who signed up inside the data; too new for the target: excluded.
    SELECT user_id, t0, t0 + {{horizon_us}} <= {{end_us}} AS mature
    FROM signups
    WHERE t0 >= {{first_day_us}}
)
SELECT user_id, t0, mature FROM eligible;
-- stage ue
-- One pass over the cohort's first weeks: per user and event, how often in
-- the window (capped at max_n) and whether it falls in the target.
SELECT
    c.user_id,
    CAST(e.event AS VARCHAR) AS event,
    least(sum(CASE WHEN CAST(e.event_time AS BIGINT) - c.t0 < {{window_us}} THEN 1 ELSE 0 END), {{max_n}}) AS c,
    max(CASE WHEN CAST(e.event_time AS BIGINT) - c.t0 >= {{target_from_us}}
              AND CAST(e.event_time AS BIGINT) - c.t0 < {{target_to_us}} AND {{target_filter}} THEN 1 ELSE 0 END) AS yt
FROM eligible c
JOIN events e ON e.{{unit_col}} = c.user_id
WHERE c.mature AND e.event_date >= {{first_day}}
  AND CAST(e.event_time AS BIGINT) >= c.t0 AND CAST(e.event_time AS BIGINT) < c.t0 + {{horizon_us}}
GROUP BY c.user_id, e.event;
-- The report, over the two stages.
WITH cohort AS (
    SELECT user_id, t0 FROM eligible WHERE mature
),
excluded AS (
    SELECT count(*) AS users FROM eligible WHERE NOT mature
),
y AS (
    SELECT c.user_id, coalesce(u.y, 0) AS y
    FROM cohort c
    LEFT JOIN (SELECT user_id, max(yt) AS y FROM ue GROUP BY user_id) u ON u.user_id = c.user_id
),
counts AS (
    -- Every user of ue is in the cohort, so the inner join keeps them all;
    -- carrying y here spares the pairs a join with y after their self-join.
    SELECT k.user_id, k.event, k.c, y.y FROM ue k JOIN y ON y.user_id = k.user_id WHERE k.c > 0
),
totals AS (
    SELECT count(*) AS users, sum(y) AS users_y FROM y
),
dist AS (
    SELECT event, c, count(*) AS users, sum(y) AS users_y
    FROM counts
    GROUP BY event, c
),
ns AS (
    SELECT value AS n FROM generate_series(1, {{max_n}})
),
singles AS (
    -- Users with at least n: the sum over counts c >= n (cumulative over n).
    SELECT d.event, ns.n, sum(d.users) AS x, sum(d.users_y) AS xy
    FROM dist d JOIN ns ON d.c >= ns.n
    GROUP BY d.event, ns.n
),
single_stats AS (
    SELECT event, n, CAST(NULL AS VARCHAR) AS event2, CAST(NULL AS BIGINT) AS n2, x, xy FROM singles
),
scored AS (
    SELECT
        s.*,
        t.users,
        t.users_y,
        -- a = X and Y, b = X only, c = Y only, d = neither
        CAST(s.xy AS DOUBLE) AS a,
        CAST(s.x - s.xy AS DOUBLE) AS b,
        CAST(t.users_y - s.xy AS DOUBLE) AS c,
        CAST(t.users - s.x - (t.users_y - s.xy) AS DOUBLE) AS d
    FROM single_stats s CROSS JOIN totals t
),
phis AS (
    SELECT *,
        CASE WHEN (a + b) * (c + d) * (a + c) * (b + d) > 0
             THEN (a * d - b * c) / sqrt((a + b) * (c + d) * (a + c) * (b + d)) END AS phi
    FROM scored
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY event ORDER BY round(phi, 9) DESC NULLS LAST, n) AS rank_in_event FROM phis
),
candidates AS (
    SELECT event, n FROM ranked WHERE rank_in_event = 1 AND phi > 0 ORDER BY round(phi, 9) DESC, event, n LIMIT {{pair_candidates}}
),
pair_counts AS (
    SELECT c1.event, c1.n, c2.event AS event2, c2.n AS n2, count(*) AS x, sum(k1.y) AS xy
    FROM candidates c1
    JOIN candidates c2 ON c1.event < c2.event
    JOIN counts k1 ON k1.event = c1.event AND k1.c >= c1.n
    JOIN counts k2 ON k2.event = c2.event AND k2.c >= c2.n AND k2.user_id = k1.user_id
    GROUP BY c1.event, c1.n, c2.event, c2.n
),
pair_phis AS (
    SELECT *,
        CASE WHEN (a + b) * (c + d) * (a + c) * (b + d) > 0
             THEN (a * d - b * c) / sqrt((a + b) * (c + d) * (a + c) * (b + d)) END AS phi
    FROM (
        SELECT p.event, p.n, p.event2, p.n2, p.x, p.xy, t.users, t.users_y,
            CAST(p.xy AS DOUBLE) AS a,
            CAST(p.x - p.xy AS DOUBLE) AS b,
            CAST(t.users_y - p.xy AS DOUBLE) AS c,
            CAST(t.users - p.x - (t.users_y - p.xy) AS DOUBLE) AS d
        FROM pair_counts p CROSS JOIN totals t
    ) q
),
top_pairs AS (
    SELECT * FROM pair_phis ORDER BY round(phi, 9) DESC NULLS LAST, event, n, event2, n2 LIMIT {{pairs}}
),
all_rows AS (
    SELECT CASE WHEN rank_in_event = 1 THEN 'best' ELSE 'other' END AS section,
        event, n, event2, n2, x, xy, users, users_y, a, b, c, d, phi FROM ranked
    UNION ALL
    SELECT 'pair', event, n, event2, n2, x, xy, users, users_y, a, b, c, d, phi FROM top_pairs
)
SELECT
    section,
    event,
    CAST(n AS BIGINT) AS n,
    event2,
    CAST(n2 AS BIGINT) AS n2,
    phi,
    CASE WHEN phi IS NULL THEN 'undefined'
         WHEN phi > {{strong}} THEN 'strong'
         WHEN phi >= {{positive}} THEN 'positive'
         WHEN phi >= {{weak}} THEN 'weak'
         WHEN phi > -{{weak}} THEN 'none'
         ELSE 'negative' END AS label,
    CASE WHEN a + b > 0 THEN 100.0 * a / (a + b) END AS ppv_pct,
    CASE WHEN a + c > 0 THEN 100.0 * a / (a + c) END AS sensitivity_pct,
    CASE WHEN b + d > 0 THEN 100.0 * d / (b + d) END AS specificity_pct,
    100.0 * x / users AS support_pct,
    CAST(x AS BIGINT) AS users_with,
    CAST(users AS BIGINT) AS users,
    CAST(users_y AS BIGINT) AS users_reaching_target,
    (SELECT users FROM excluded) AS users_too_new
FROM all_rows

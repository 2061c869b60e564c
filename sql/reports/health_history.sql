-- health_history(from DATE, to DATE, every INTERVAL = '7 days', days BIGINT = 7, org_id VARCHAR = ''): per account (every one, or org_id's) and as_of from `from` to `to` every `every` (whole days): what health_scores(as_of, days) gives on that day (health, temperature, quadrant, play, band, their change, the measure that moved most, and each measure), computed in one pass over the events of the period
-- order: org_id, as_of
-- The events of every day the dates need, reduced once, each to what one
-- measure counts: per account, the days (as a set of day offsets from
-- history_first_day) each user, each visit and each module was seen on,
-- and the minutes of each day. first_of_run drops a row that repeats
-- the one before it (sorted files hold a visit's rows together): a set of
-- days is the same without it, and the grouping hashes far fewer rows.
-- stage user_sets
SELECT org_id, user_id, day_bits(CAST(CAST(event_date AS INT) AS BIGINT) - {{first_day_number}}, {{span}}) AS days
FROM events
WHERE event_date >= {{history_first_day}} AND event_date <= {{to}}
    AND first_of_run(event_date >= {{history_first_day}} AND event_date <= {{to}}, org_id, user_id, event_date)
GROUP BY org_id, user_id;
-- stage session_sets
SELECT org_id, session_id, day_bits(CAST(CAST(event_date AS INT) AS BIGINT) - {{first_day_number}}, {{span}}) AS days
FROM events
WHERE event_date >= {{history_first_day}} AND event_date <= {{to}} AND session_id IS NOT NULL
    AND first_of_run(event_date >= {{history_first_day}} AND event_date <= {{to}} AND session_id IS NOT NULL, org_id, session_id, event_date)
GROUP BY org_id, session_id;
-- stage module_sets
SELECT org_id, module, day_bits(CAST(CAST(event_date AS INT) AS BIGINT) - {{first_day_number}}, {{span}}) AS days
FROM events
WHERE event_date >= {{history_first_day}} AND event_date <= {{to}} AND module IS NOT NULL
GROUP BY org_id, module;
-- stage org_days
SELECT org_id, CAST(CAST(event_date AS INT) AS BIGINT) AS d, sum(duration_ms) AS duration_ms
FROM events
WHERE event_date >= {{history_first_day}} AND event_date <= {{to}}
GROUP BY org_id, event_date;
-- Each as_of (day number a) scores the period of `days` up to it (w = 0) and
-- the two before (w = 1, 2): the periods ending on a - w * days. Dates that
-- share a period (weekly dates of weekly periods) share its counts.
-- stage day_periods
SELECT e, unnest(range(e - {{days}} + 1, e + 1)) AS d
FROM (
    SELECT DISTINCT {{from_day}} + k * {{every_days}} - w * {{days}} AS e
    FROM (SELECT unnest(range(0, {{points}})) AS k)
    CROSS JOIN (VALUES (0), (1), (2)) AS t(w)
);
-- stage asof
SELECT CAST(CAST({{from_day}} + k * {{every_days}} AS INT) AS DATE) AS as_of, {{from_day}} + k * {{every_days}} AS a, {{days}} AS period_days
FROM (SELECT unnest(range(0, {{points}})) AS k);
-- Per account, date and window w: what the scores count. Held once: the
-- scoring below reads it several times (SQL would recount it at every use).
-- window_counts gives, per account, the count of every period of `days`
-- ending on each day from history_first_day (offset j) to `to`.
-- stage usage
WITH active AS (
    SELECT org_id, {{first_day_number}} + unnest(range(0, {{span}})) AS e, unnest(n) AS active_users, unnest(k) AS key_active, unnest(a) AS admins_active
    FROM (
        SELECT s.org_id,
            window_counts(s.days, {{span}}, {{days}}) AS n,
            window_counts(CASE WHEN u.is_key_user THEN s.days END, {{span}}, {{days}}) AS k,
            window_counts(CASE WHEN u.is_key_user OR u.role = 'admin' THEN s.days END, {{span}}, {{days}}) AS a
        FROM user_sets s
        LEFT JOIN users u ON u.user_id = s.user_id
        GROUP BY s.org_id
    )
),
minutes AS (
    SELECT x.org_id, p.e, coalesce(sum(x.duration_ms), 0) / 60000.0 AS minutes
    FROM org_days x JOIN day_periods p ON p.d = x.d
    GROUP BY x.org_id, p.e
),
visits AS (
    SELECT org_id, {{first_day_number}} + unnest(range(0, {{span}})) AS e, unnest(n) AS visits
    FROM (SELECT org_id, window_counts(days, {{span}}, {{days}}) AS n FROM session_sets GROUP BY org_id)
),
breadth AS (
    SELECT org_id, {{first_day_number}} + unnest(range(0, {{span}})) AS e, unnest(n) AS modules_used
    FROM (
        SELECT org_id, window_counts(days, {{span}}, {{days}}) AS n
        FROM module_sets
        WHERE ${health.all_modules} OR module IN (${health.core_modules})
        GROUP BY org_id
    )
)
SELECT g.as_of, m.org_id, w.w, a.active_users, coalesce(v.visits, 0) AS visits, m.minutes, coalesce(b.modules_used, 0) AS modules_used, a.key_active, a.admins_active
FROM asof g
CROSS JOIN (VALUES (0), (1), (2)) AS w(w)
JOIN minutes m ON m.e = g.a - w.w * {{days}}
JOIN active a ON a.org_id = m.org_id AND a.e = m.e
LEFT JOIN visits v ON v.org_id = m.org_id AND v.e = m.e
LEFT JOIN breadth b ON b.org_id = m.org_id AND b.e = m.e;
-- Modules used by anyone in the three periods up to each as_of: each
-- module's days in every account (day_bits of sets is their union),
-- counted over windows of three periods.
-- stage core
SELECT g.as_of, CASE WHEN ${health.all_modules} THEN greatest(coalesce(m.modules, 0), 1) ELSE ${health.core_module_count} END AS modules
FROM asof g
LEFT JOIN (
    SELECT {{first_day_number}} + unnest(range(0, {{span}})) AS e, unnest(n) AS modules
    FROM (
        SELECT window_counts(days, {{span}}, 3 * {{days}}) AS n
        FROM (SELECT module, day_bits(days, {{span}}) AS days FROM module_sets GROUP BY module)
    )
) m ON m.e = g.a;
-- Each measure and health per as_of, account and window.
-- stage health
WITH ${part:health_people},
grid AS (
    SELECT
        g.as_of, g.period_days,
        ${part:health_grid_columns}
    -- Every account at every date and window, made by unnest: a CROSS JOIN
    -- with a side of a few rows makes one small batch per row, and is slow.
    FROM (SELECT *, unnest([0, 1, 2]) AS w FROM (SELECT *, unnest(range(0, {{points}})) AS k FROM account_rows)) a
    JOIN asof g ON g.a = {{from_day}} + a.k * {{every_days}}
    JOIN (VALUES (0), (1), (2)) AS w(w) ON w.w = a.w
    LEFT JOIN usage u ON u.as_of = g.as_of AND u.org_id = a.org_id AND u.w = w.w
    LEFT JOIN people p ON p.org_id = a.org_id
    WHERE a.signup_time IS NULL OR CAST(a.signup_time AS DATE) <= g.as_of
),
${part:health_measures}
SELECT * FROM health;
WITH ${part:health_scoring}
-- Scored among every account, then narrowed to the one asked for.
SELECT * FROM scores WHERE {{org_id}} = '' OR org_id = {{org_id}}

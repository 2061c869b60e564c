-- health_history(from DATE, to DATE, every INTERVAL = '7 days', days BIGINT = 7, org_id VARCHAR = ''): per account (every one, or org_id's) and as_of from `from` to `to` every `every` (whole days): what health_scores(as_of, days) gives on that day (health, temperature, quadrant, play, band, their change, the measure that moved most, and each measure), computed in one pass over the events of the period
-- order: org_id, as_of
-- The events of every day the dates need, reduced once to what the scores
-- count: distinct users, sessions and modules, and minutes.
-- stage daily
SELECT org_id, user_id, event_date AS d, session_id, module, sum(duration_ms) AS duration_ms
FROM events
WHERE event_date >= {{history_first_day}} AND event_date <= {{to}}
GROUP BY org_id, user_id, event_date, session_id, module;
WITH asof AS (
    SELECT CAST(CAST({{from_day}} + k * {{every_days}} AS INT) AS DATE) AS as_of, {{days}} AS period_days
    FROM (SELECT unnest(range(0, {{points}})) AS k)
),
-- Each day counts for the as_of dates whose three periods hold it: as_of k
-- is from + k * every, and a day D is in its periods when D <= as_of < D + 3 * days.
spread AS (
    SELECT
        org_id, user_id, d, session_id, module, duration_ms,
        CASE WHEN CAST(d AS BIGINT) <= {{from_day}} THEN 0 ELSE (CAST(d AS BIGINT) - {{from_day}} + {{every_days}} - 1) / {{every_days}} END AS k_lo,
        least({{points}} - 1, (CAST(d AS BIGINT) + 3 * {{days}} - 1 - {{from_day}}) / {{every_days}}) AS k_hi
    FROM daily
),
ev AS (
    SELECT
        CAST(CAST({{from_day}} + k * {{every_days}} AS INT) AS DATE) AS as_of,
        org_id, user_id, session_id, module, duration_ms,
        ({{from_day}} + k * {{every_days}} - CAST(d AS BIGINT)) / {{days}} AS w
    FROM (SELECT s.*, unnest(range(s.k_lo, s.k_hi + 1)) AS k FROM spread s WHERE s.k_lo <= s.k_hi)
),
core AS (
    SELECT g.as_of, CASE WHEN ${health.all_modules} THEN greatest(coalesce(m.modules, 0), 1) ELSE ${health.core_module_count} END AS modules
    FROM asof g
    LEFT JOIN (SELECT as_of, count(DISTINCT module) AS modules FROM ev GROUP BY as_of) m ON m.as_of = g.as_of
),
-- One DISTINCT per aggregation, so each becomes a plain grouping.
active AS (
    SELECT a.as_of, a.org_id, a.w, count(*) AS active_users,
        sum(CASE WHEN u.is_key_user THEN 1 ELSE 0 END) AS key_active,
        sum(CASE WHEN u.is_key_user OR u.role = 'admin' THEN 1 ELSE 0 END) AS admins_active
    FROM (SELECT DISTINCT as_of, org_id, w, user_id FROM ev) a
    LEFT JOIN users u ON u.user_id = a.user_id
    GROUP BY a.as_of, a.org_id, a.w
),
visits AS (
    SELECT as_of, org_id, w, count(DISTINCT session_id) AS visits, coalesce(sum(duration_ms), 0) / 60000.0 AS minutes
    FROM ev
    GROUP BY as_of, org_id, w
),
breadth AS (
    SELECT as_of, org_id, w, count(DISTINCT module) AS modules_used
    FROM ev
    WHERE ${health.all_modules} OR module IN (${health.core_modules})
    GROUP BY as_of, org_id, w
),
usage AS (
    SELECT v.as_of, v.org_id, v.w, a.active_users, v.visits, v.minutes, coalesce(b.modules_used, 0) AS modules_used, a.key_active, a.admins_active
    FROM visits v
    JOIN active a ON a.as_of = v.as_of AND a.org_id = v.org_id AND a.w = v.w
    LEFT JOIN breadth b ON b.as_of = v.as_of AND b.org_id = v.org_id AND b.w = v.w
),
${part:health_people},
grid AS (
    SELECT
        g.as_of, g.period_days,
        ${part:health_grid_columns}
    FROM accounts a
    CROSS JOIN asof g
    CROSS JOIN (VALUES (0), (1), (2)) AS w(w)
    LEFT JOIN usage u ON u.as_of = g.as_of AND u.org_id = a.org_id AND u.w = w.w
    LEFT JOIN people p ON p.org_id = a.org_id
    WHERE a.signup_time IS NULL OR CAST(a.signup_time AS DATE) <= g.as_of
),
${part:health_scoring}
-- Scored among every account, then narrowed to the one asked for.
SELECT * FROM scores WHERE {{org_id}} = '' OR org_id = {{org_id}}

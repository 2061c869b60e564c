-- health_scores(as_of DATE, days BIGINT): per account: health 0-100 (share of seats active, visits, minutes, breadth of core modules, key users active), temperature 0-100 (visit trend, paid, time to renewal, user growth, admins and key users active), quadrant and its play, colour band, change against the previous period, and the measure that moved health most
-- order: health, org_id
-- Per account and window (w = 0: the last `days` days up to as_of; w = 1 and
-- 2: the periods before), what the scores count. Held once: the scoring
-- below reads it several times (SQL would recount it from the events at every use).
-- stage usage
WITH ev AS (
    SELECT org_id, user_id, session_id, duration_ms, module, event_date, (CAST({{as_of}} AS INT) - CAST(event_date AS INT)) / {{days}} AS w
    FROM events
    WHERE event_date >= {{prev2_start}} AND event_date <= {{as_of}}
),
-- One DISTINCT per aggregation, so each becomes a plain grouping; each reads
-- only the first row of a run of rows with its keys and day (first_of_run:
-- sorted files hold a user's and a visit's rows together), which changes no
-- distinct count and hashes far fewer rows.
active AS (
    SELECT a.org_id, a.w, count(*) AS active_users,
        sum(CASE WHEN u.is_key_user THEN 1 ELSE 0 END) AS key_active,
        sum(CASE WHEN u.is_key_user OR u.role = 'admin' THEN 1 ELSE 0 END) AS admins_active
    FROM (
        SELECT DISTINCT org_id, w, user_id FROM ev
        WHERE first_of_run(event_date >= {{prev2_start}} AND event_date <= {{as_of}}, org_id, user_id, event_date)
    ) a
    LEFT JOIN users u ON u.user_id = a.user_id
    GROUP BY a.org_id, a.w
),
visits AS (
    SELECT org_id, w, count(DISTINCT session_id) AS visits
    FROM ev
    WHERE first_of_run(event_date >= {{prev2_start}} AND event_date <= {{as_of}}, org_id, session_id, event_date)
    GROUP BY org_id, w
),
minutes AS (
    SELECT org_id, w, coalesce(sum(duration_ms), 0) / 60000.0 AS minutes
    FROM ev
    GROUP BY org_id, w
),
breadth AS (
    SELECT org_id, w, count(DISTINCT module) AS modules_used
    FROM ev
    WHERE (${health.all_modules} OR module IN (${health.core_modules}))
        AND first_of_run(event_date >= {{prev2_start}} AND event_date <= {{as_of}} AND (${health.all_modules} OR module IN (${health.core_modules})), org_id, module, event_date)
    GROUP BY org_id, w
)
SELECT v.org_id, v.w, a.active_users, v.visits, m.minutes, coalesce(b.modules_used, 0) AS modules_used, a.key_active, a.admins_active
FROM visits v
JOIN minutes m ON m.org_id = v.org_id AND m.w = v.w
JOIN active a ON a.org_id = v.org_id AND a.w = v.w
LEFT JOIN breadth b ON b.org_id = v.org_id AND b.w = v.w;
-- Modules used by anyone in the three periods.
-- stage core
SELECT {{as_of}} AS as_of, CASE WHEN ${health.all_modules} THEN greatest(count(DISTINCT module), 1) ELSE ${health.core_module_count} END AS modules
FROM events
WHERE event_date >= {{prev2_start}} AND event_date <= {{as_of}};
-- Each measure and health per as_of, account and window.
-- stage health
WITH ${part:health_people},
grid AS (
    SELECT
        {{as_of}} AS as_of, {{days}} AS period_days,
        ${part:health_grid_columns}
    -- Every account in every window, made by unnest (a CROSS JOIN with a
    -- side of a few rows makes one small batch per row).
    FROM (SELECT *, unnest([0, 1, 2]) AS w FROM account_rows) a
    JOIN (VALUES (0), (1), (2)) AS w(w) ON w.w = a.w
    LEFT JOIN usage u ON u.org_id = a.org_id AND u.w = w.w
    LEFT JOIN people p ON p.org_id = a.org_id
    WHERE a.signup_time IS NULL OR CAST(a.signup_time AS DATE) <= {{as_of}}
),
${part:health_measures}
SELECT * FROM health;
WITH ${part:health_scoring}
SELECT * EXCLUDE (as_of) FROM scores

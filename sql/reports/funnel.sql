-- funnel(steps EVENTS, window INTERVAL = 7 days, breakdown VARCHAR = '', mode VARCHAR = '', from DATE = first, to DATE = last, unit VARCHAR = user): per step (and breakdown value): users (accounts, by account: any member's event counts) who reached it, drop-off, conversion from the previous and from the first step in percent, median and p90 hours from the previous step
-- order: breakdown = 'other', breakdown, step
WITH ev AS (
    SELECT e.{{unit_col}} AS user_id, e.event_time, e.event, {{breakdown_expr}} AS bval
    FROM events e {{breakdown_join}}
    WHERE {{event_filter}} AND e.event_date >= {{from}} AND e.event_date <= {{to}}
),
per_user AS (
    -- A user's breakdown value is the one on their first step-1 event.
    SELECT
        user_id,
        first_value(bval ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS bval,
        window_funnel_path({{window}}, {{mode}}, event_time, {{conditions}}) AS path
    FROM ev
    GROUP BY user_id
),
entered AS (
    SELECT coalesce(bval, '(none)') AS bval, path, cardinality(path) AS level
    FROM per_user
    WHERE cardinality(path) > 0
),
top_values AS (
    SELECT bval FROM entered GROUP BY bval ORDER BY count(*) DESC, bval LIMIT {{top_values}}
),
labelled AS (
    SELECT
        CAST(CASE WHEN NOT {{has_breakdown}} THEN 'all'
                  WHEN t.bval IS NOT NULL THEN e.bval
                  ELSE 'other' END AS VARCHAR) AS breakdown,
        e.path,
        e.level
    FROM entered e
    LEFT JOIN top_values t ON t.bval = e.bval
),
steps(step, event) AS (VALUES {{step_rows}}),
per_step AS (
    SELECT
        l.breakdown,
        CAST(s.step AS BIGINT) AS step,
        CAST(s.event AS VARCHAR) AS event,
        CAST(sum(CASE WHEN l.level >= s.step THEN 1 ELSE 0 END) AS BIGINT) AS users,
        median(CASE WHEN l.level >= s.step AND s.step > 1 THEN (l.path[s.step] - l.path[s.step - 1]) / 3600000000.0 END) AS median_hours,
        percentile_cont(CASE WHEN l.level >= s.step AND s.step > 1 THEN (l.path[s.step] - l.path[s.step - 1]) / 3600000000.0 END, 0.9) AS p90_hours
    FROM labelled l
    CROSS JOIN steps s
    GROUP BY l.breakdown, s.step, s.event
)
SELECT
    breakdown,
    step,
    event,
    users,
    lag(users) OVER (PARTITION BY breakdown ORDER BY step) - users AS dropped,
    100.0 * users / lag(users) OVER (PARTITION BY breakdown ORDER BY step) AS conversion_from_previous_pct,
    100.0 * users / first_value(users) OVER (PARTITION BY breakdown ORDER BY step) AS conversion_from_first_pct,
    median_hours AS median_hours_from_previous,
    p90_hours AS p90_hours_from_previous
FROM per_step

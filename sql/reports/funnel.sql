-- funnel(steps EVENTS, window INTERVAL = 7 days, breakdown VARCHAR = '', mode VARCHAR = '', from DATE = first, to DATE = last, unit VARCHAR = user): per step (and breakdown value): users (accounts, by account: any member's event counts) who reached it, drop-off, conversion from the previous and from the first step in percent, median and p90 hours from the previous step
-- order: breakdown = 'other', breakdown, step
-- With a breakdown, who entered the funnel, their breakdown value and chain:
-- one funnel pass, held once (the top values and the steps both read it).
-- Without one, nothing is held: the steps read the pass directly.
-- stage entered
WITH ${part:funnel_pass}
SELECT * FROM passed WHERE {{has_breakdown}};
WITH ${part:funnel_pass},
entered_all AS (
    SELECT * FROM entered
    UNION ALL
    SELECT * FROM passed WHERE NOT {{has_breakdown}}
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
    FROM entered_all e
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

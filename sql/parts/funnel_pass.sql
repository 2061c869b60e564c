-- Used by funnel (`${part:funnel_pass}`): the CTEs up to `passed`, one
-- funnel pass: each user (account) who entered, their breakdown value (the
-- one on their first step-1 event), chain and level.
ev AS (
    SELECT e.{{unit_col}} AS user_id, e.event_time, e.event, {{breakdown_expr}} AS bval
    FROM events e {{breakdown_join}}
    WHERE {{event_filter}} AND e.event_date >= {{from}} AND e.event_date <= {{to}}
),
per_user AS (
    SELECT
        user_id,
        first_value(bval ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS bval,
        window_funnel_path({{window}}, {{mode}}, event_time, {{conditions}}) AS path
    FROM ev
    GROUP BY user_id
),
passed AS (
    SELECT coalesce(bval, '(none)') AS bval, path, cardinality(path) AS level
    FROM per_user
    WHERE cardinality(path) > 0
)

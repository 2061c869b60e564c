-- funnel_dropoffs(steps EVENTS, window INTERVAL = 7 days, step BIGINT = 1, mode VARCHAR = '', from DATE = first, to DATE = last, limit BIGINT = 1000): who dropped out after a funnel step: the users who reached step (along the chain window_funnel counts) but not the next one, as many as funnel's dropped on the next step's row, with their account, when they reached the step, the breakdown columns of their first step-1 event (utm_source, browser, os, region), their account's plan and their role, and the next three events they did after the step (where they went); the latest first, at most limit
-- order: reached_at DESC, user_id
WITH ev AS (
    SELECT e.user_id, e.org_id, e.event_time, e.event, e.utm_source, e.browser, e.os, e.region
    FROM events e
    WHERE {{event_filter}} AND e.event_date >= {{from}} AND e.event_date <= {{to}}
),
per_user AS (
    SELECT
        user_id,
        first_value(org_id ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS org_id,
        first_value(utm_source ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS utm_source,
        first_value(browser ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS browser,
        first_value(os ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS os,
        first_value(region ORDER BY event_time) FILTER (WHERE event = {{step1}}) AS region,
        window_funnel_path({{window}}, {{mode}}, event_time, {{conditions}}) AS path
    FROM ev
    GROUP BY user_id
),
dropped AS (
    SELECT user_id, org_id, utm_source, browser, os, region, path[{{step}}] AS reached_us
    FROM per_user
    WHERE cardinality(path) = {{step}}
),
later AS (
    -- Every event after the step's, up to `to`: where the user went instead.
    SELECT d.user_id, e.event,
           row_number() OVER (PARTITION BY d.user_id ORDER BY e.event_time, e.event) AS k
    FROM dropped d
    JOIN events e ON e.user_id = d.user_id
    WHERE CAST(e.event_time AS BIGINT) > d.reached_us AND e.event_date >= {{from}} AND e.event_date <= {{to}}
),
next3 AS (
    SELECT user_id, array_agg(event ORDER BY k) AS next_events
    FROM later
    WHERE k <= 3
    GROUP BY user_id
)
SELECT
    CAST(d.user_id AS VARCHAR) AS user_id,
    CAST(d.org_id AS VARCHAR) AS org_id,
    CAST({{step}} AS BIGINT) AS step,
    CAST({{step_event}} AS VARCHAR) AS step_event,
    CAST({{next_step_event}} AS VARCHAR) AS missed_event,
    arrow_cast(d.reached_us, 'Timestamp(Microsecond, Some("UTC"))') AS reached_at,
    CAST(d.utm_source AS VARCHAR) AS utm_source,
    CAST(d.browser AS VARCHAR) AS browser,
    CAST(d.os AS VARCHAR) AS os,
    CAST(d.region AS VARCHAR) AS region,
    CAST(a.plan AS VARCHAR) AS plan,
    CAST(u.role AS VARCHAR) AS role,
    n.next_events,
    CAST(n.next_events[1] AS VARCHAR) AS next_1,
    CAST(n.next_events[2] AS VARCHAR) AS next_2,
    CAST(n.next_events[3] AS VARCHAR) AS next_3
FROM dropped d
LEFT JOIN next3 n ON n.user_id = d.user_id
LEFT JOIN accounts a ON a.org_id = d.org_id
LEFT JOIN users u ON u.user_id = d.user_id
ORDER BY reached_at DESC, user_id
LIMIT {{limit}}

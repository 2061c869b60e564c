-- funnel_time_to_convert(steps EVENTS, window INTERVAL = 7 days, from_step BIGINT = 1, to_step BIGINT = 0, bins BIGINT = 20, mode VARCHAR = '', from DATE = first, to DATE = last, unit VARCHAR = user): a histogram of the time from one funnel step to a later one (to_step 0 is the last step), measured along the chain funnel counts: bins of one width, the narrowest readable duration (1, 2, 5, 10, 15 or 30 seconds or minutes; 1, 2, 3, 6 or 12 hours; 1, 2, 3, 7, 14, 30, 90, 180 days; years) that holds the slowest conversion in at most bins bins; per bin its bounds in seconds (from inclusive, to exclusive) and as text, the users (accounts, by account) whose time falls in it, their share and the share up to it; the users of all bins are funnel's users on to_step
-- order: bin
-- Each converted user's time: one funnel pass, held once (read by every part below).
-- stage converted
WITH ev AS (
    SELECT e.{{unit_col}} AS user_id, e.event_time, e.event
    FROM events e
    WHERE {{event_filter}} AND e.event_date >= {{from}} AND e.event_date <= {{to}}
),
per_user AS (
    SELECT window_funnel_path({{window}}, {{mode}}, event_time, {{conditions}}) AS path
    FROM ev
    GROUP BY user_id
)
-- Microseconds between the two steps of one chain (never negative: a chain's times only grow).
SELECT path[{{to_step}}] - path[{{from_step}}] AS us
FROM per_user
WHERE cardinality(path) >= {{to_step}};
WITH totals AS (
    SELECT max(us) AS slowest, count(*) AS users FROM converted
),
widths(seconds) AS (
    VALUES (1), (2), (5), (10), (15), (30), (60), (120), (300), (600), (900), (1800),
           (3600), (7200), (10800), (21600), (43200), (86400), (172800), (259200), (604800), (1209600),
           (2592000), (7776000), (15552000), (31536000), (63072000), (157680000), (315360000),
           (630720000), (1576800000), (3153600000), (6307200000)
),
chosen AS (
    -- The narrowest width whose bins hold the slowest time; none when nobody converted.
    -- Times are at most the window (36500 days), so the widest width always fits.
    SELECT min(w.seconds) AS seconds, t.slowest, t.users
    FROM widths w CROSS JOIN totals t
    WHERE t.slowest < {{bins}} * w.seconds * 1000000
    GROUP BY t.slowest, t.users
),
unit AS (
    SELECT seconds, slowest, users,
           CASE WHEN seconds % 86400 = 0 THEN 86400 WHEN seconds % 3600 = 0 THEN 3600 WHEN seconds % 60 = 0 THEN 60 ELSE 1 END AS per,
           CASE WHEN seconds % 86400 = 0 THEN 'd' WHEN seconds % 3600 = 0 THEN 'h' WHEN seconds % 60 = 0 THEN 'min' ELSE 's' END AS label
    FROM chosen
),
all_bins AS (
    SELECT unnest(range(0, slowest / (seconds * 1000000) + 1)) AS b FROM unit
),
counts AS (
    SELECT c.us / (u.seconds * 1000000) AS b, count(*) AS users
    FROM converted c CROSS JOIN unit u
    GROUP BY 1
)
SELECT
    CAST(a.b + 1 AS BIGINT) AS bin,
    CAST(a.b * u.seconds AS BIGINT) AS from_seconds,
    CAST((a.b + 1) * u.seconds AS BIGINT) AS to_seconds,
    concat(CAST(a.b * u.seconds / u.per AS VARCHAR), '–', CAST((a.b + 1) * u.seconds / u.per AS VARCHAR), ' ', u.label) AS label,
    CAST(coalesce(c.users, 0) AS BIGINT) AS users,
    100.0 * coalesce(c.users, 0) / u.users AS share_pct,
    100.0 * sum(coalesce(c.users, 0)) OVER (ORDER BY a.b) / u.users AS cumulative_pct
FROM all_bins a
CROSS JOIN unit u
LEFT JOIN counts c ON c.b = a.b

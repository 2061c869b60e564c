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
${part:health_scoring}
-- Scored among every account, then narrowed to the one asked for.
SELECT * FROM scores WHERE {{org_id}} = '' OR org_id = {{org_id}}

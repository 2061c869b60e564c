-- funnel_correlation(steps EVENTS, window INTERVAL = 7 days, mode VARCHAR = '', from DATE = first, to DATE = last, properties VARCHAR = ''): what goes with converting? For each event done between entering a funnel and converting (or, for those who did not convert, the end of the window), and each value of the listed properties (default utm_source, browser, os, plan, industry, role): events columns (of the entering event), accounts columns and users columns: the entrants with it who converted and who did not, the same without it, the odds ratio of converting with a 0.5 correction where a cell is 0, its 95% interval, and whether it goes with success or failure (where the interval excludes 1); those that do first, each group the strongest first
-- order: rank
-- Who entered the funnel, when, and whether they converted: one funnel
-- pass, held once (the parts below read it four times).
-- stage entrants
WITH per_user AS (
    SELECT
        user_id,
        window_funnel_path({{window}}, {{mode}}, event_time, {{conditions}}) AS path
    FROM events
    WHERE event_date >= {{from}} AND event_date <= {{to}}
    GROUP BY user_id
)
SELECT
    user_id,
    path[1] AS t_in,
    CASE WHEN cardinality(path) = {{n_steps}} THEN path[{{n_steps}}] ELSE path[1] + {{window_us}} END AS t_out,
    cardinality(path) = {{n_steps}} AS converted
FROM per_user
WHERE cardinality(path) > 0;
WITH ev AS (
    SELECT e.user_id, e.org_id, e.event_time, e.event, e.utm_source, e.utm_medium, e.utm_campaign, e.utm_content, e.utm_term,
           e.browser, e.os, e.region, e.module, e.page, e.event_date
    FROM events e
    WHERE e.event_date >= {{from}} AND e.event_date <= {{to}}
),
entering AS (
    -- The entering event (the chain's first step), for the events columns.
    SELECT x.user_id, first_value(e.org_id ORDER BY e.event) AS org_id{{entering_columns}}
    FROM entrants x
    JOIN ev e ON e.user_id = x.user_id AND CAST(e.event_time AS BIGINT) = x.t_in AND e.event = {{step1}}
    GROUP BY x.user_id
),
features AS (
    SELECT DISTINCT x.user_id, CAST('event' AS VARCHAR) AS kind, CAST(e.event AS VARCHAR) AS name, CAST(NULL AS VARCHAR) AS value
    FROM entrants x
    JOIN ev e ON e.user_id = x.user_id
    WHERE CAST(e.event_time AS BIGINT) >= x.t_in AND CAST(e.event_time AS BIGINT) <= x.t_out AND e.event NOT IN ({{step_list}})
    {{property_rows}}
),
totals AS (
    SELECT sum(CASE WHEN converted THEN 1 ELSE 0 END) AS s, sum(CASE WHEN converted THEN 0 ELSE 1 END) AS f FROM entrants
),
cells AS (
    SELECT
        f.kind, f.name, f.value,
        sum(CASE WHEN x.converted THEN 1 ELSE 0 END) AS success_with,
        sum(CASE WHEN x.converted THEN 0 ELSE 1 END) AS failure_with
    FROM features f
    JOIN entrants x ON x.user_id = f.user_id
    GROUP BY f.kind, f.name, f.value
),
tables AS (
    SELECT
        c.kind, c.name, c.value,
        c.success_with, c.failure_with,
        t.s - c.success_with AS success_without,
        t.f - c.failure_with AS failure_without
    FROM cells c CROSS JOIN totals t
),
corrected AS (
    -- Haldane's correction: 0.5 added to every cell of a table with an empty cell.
    SELECT *,
        CASE WHEN success_with = 0 OR failure_with = 0 OR success_without = 0 OR failure_without = 0 THEN 0.5 ELSE 0.0 END AS k
    FROM tables
),
odds AS (
    SELECT *,
        ln((success_with + k) * (failure_without + k) / ((failure_with + k) * (success_without + k))) AS log_odds,
        sqrt(1.0 / (success_with + k) + 1.0 / (failure_with + k) + 1.0 / (success_without + k) + 1.0 / (failure_without + k)) AS se
    FROM corrected
),
judged AS (
    -- Success or failure only where the 95% interval excludes 1: an event
    -- every entrant did (nobody without it) has no contrast and says nothing.
    SELECT *,
        CASE WHEN log_odds - 1.959963984540054 * se > 0 THEN 'success'
             WHEN log_odds + 1.959963984540054 * se < 0 THEN 'failure'
             ELSE 'none' END AS judged
    FROM odds
)
SELECT
    CAST(row_number() OVER (ORDER BY judged = 'none', round(abs(log_odds), 9) DESC, kind, name, value) AS BIGINT) AS rank,
    kind,
    name,
    value,
    CAST(success_with AS BIGINT) AS success_with,
    CAST(failure_with AS BIGINT) AS failure_with,
    CAST(success_without AS BIGINT) AS success_without,
    CAST(failure_without AS BIGINT) AS failure_without,
    exp(log_odds) AS odds_ratio,
    exp(log_odds - 1.959963984540054 * se) AS ci_low,
    exp(log_odds + 1.959963984540054 * se) AS ci_high,
    CAST(judged AS VARCHAR) AS correlation
FROM judged

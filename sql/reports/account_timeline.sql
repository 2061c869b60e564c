-- account_timeline(org_id VARCHAR, from DATE = first, to DATE = last, days BIGINT = 7): one account's story in time order: its usage week by week with the change in visits per day against the week before, the milestones it reached, key users who stopped (no use in the `days` days up to `to`), health band changes (scored every 7 days from `from` over periods of `days`), the alerts open on `to` (from the day they were first seen within the 14 days before), interventions, and subscription starts, changes and ends
-- order: day, kind_rank, detail
-- The account's health every 7 days from `from`, scored among all accounts.
-- stage hist
SELECT as_of, band, health FROM health_history({{from}}, {{to}}, '7 days', {{days}}, {{org_id}});
-- The alerts open on `to`, looked for over the 14 days before it.
-- stage open_alerts
SELECT rule, severity, first_seen, reason FROM alerts({{to}}, '14 days', {{days}}) WHERE org_id = {{org_id}};
WITH usage AS (
    SELECT
        CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE) AS week,
        count(DISTINCT user_id) AS active_users,
        count(DISTINCT session_id) AS visits,
        coalesce(sum(duration_ms), 0) / 60000.0 AS minutes,
        count(DISTINCT event_date) AS days_with_use
    FROM events
    WHERE org_id = {{org_id}} AND event_date >= {{from}} AND event_date <= {{to}}
    GROUP BY 1
),
-- Every week (from Monday) that holds a day of the period, used or not.
weeks AS (
    SELECT CAST(w AS DATE) AS week
    FROM unnest(range(date_trunc('week', CAST({{from}} AS TIMESTAMP)), CAST({{to}} AS TIMESTAMP) + INTERVAL '1 day', INTERVAL '7 days')) AS r(w)
),
weekly AS (
    SELECT
        w.week,
        -- The days of the week inside the period (the first and last may be cut).
        CAST(CAST(least(w.week + INTERVAL '6 days', {{to}}) AS DATE) AS BIGINT) - CAST(CAST(greatest(w.week, {{from}}) AS DATE) AS BIGINT) + 1 AS days_in_period,
        coalesce(u.active_users, 0) AS active_users,
        coalesce(u.visits, 0) AS visits,
        coalesce(u.minutes, 0.0) AS minutes
    FROM weeks w
    LEFT JOIN usage u ON u.week = w.week
),
weekly_change AS (
    -- Visits per day, so that a week cut by the period compares fairly.
    SELECT *, lag(CAST(visits AS DOUBLE) / days_in_period) OVER (ORDER BY week) AS per_day_before FROM weekly
),
-- Each milestone's first day in the account, and how many were reached by then.
milestones AS (
    SELECT pos, event, day, row_number() OVER (ORDER BY day, pos) AS reached, (SELECT count(*) FROM (VALUES ${lifecycle.milestone_rows}) AS t(pos, event)) AS total
    FROM (
        SELECT m.pos, m.event, min(e.event_date) AS day
        FROM (VALUES ${lifecycle.milestone_rows}) AS m(pos, event)
        JOIN events e ON e.event = m.event AND e.org_id = {{org_id}}
        GROUP BY m.pos, m.event
    ) f
),
-- Each key user's last day of use up to `to`.
key_last AS (
    SELECT u.user_id, u.name, u.role, max(e.event_date) AS last_day
    FROM users u
    JOIN events e ON e.user_id = u.user_id AND e.org_id = {{org_id}} AND e.event_date <= {{to}}
    WHERE u.org_id = {{org_id}} AND u.is_key_user
    GROUP BY u.user_id, u.name, u.role
),
bands AS (
    SELECT as_of, band, health, lag(band) OVER (ORDER BY as_of) AS band_before, lag(health) OVER (ORDER BY as_of) AS health_before FROM hist
),
subs AS (
    SELECT
        subscription_id, plan, mrr, starts_on, ends_on,
        lag(plan) OVER (PARTITION BY subscription_id ORDER BY starts_on) AS plan_before,
        lag(mrr) OVER (PARTITION BY subscription_id ORDER BY starts_on) AS mrr_before,
        lag(ends_on) OVER (PARTITION BY subscription_id ORDER BY starts_on) AS ended_before,
        lead(starts_on) OVER (PARTITION BY subscription_id ORDER BY starts_on) AS next_start
    FROM subscriptions
    WHERE org_id = {{org_id}}
),
story AS (
    SELECT
        week AS day,
        'usage' AS kind,
        1 AS kind_rank,
        concat('week of ', CAST(week AS VARCHAR), ': ', active_users, ' active users, ', visits, ' visits, ', round(minutes, 1), ' minutes',
               CASE WHEN days_in_period < 7 THEN concat(' (', days_in_period, ' of 7 days in the period)') ELSE '' END) AS detail,
        CAST(visits AS DOUBLE) AS value,
        change_pct(CAST(visits AS DOUBLE) / days_in_period, per_day_before) AS change,
        CAST(NULL AS VARCHAR) AS who
    FROM weekly_change
    UNION ALL
    SELECT day, 'milestone', 2, concat('milestone reached: first ', event, ' (', reached, ' of ', total, ')'),
        CAST(reached AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR)
    FROM milestones
    WHERE day >= {{from}} AND day <= {{to}}
    UNION ALL
    SELECT CAST(last_day + INTERVAL '1 day' AS DATE), 'key_user_stopped', 3,
        concat('key user ', coalesce(name, user_id), coalesce(concat(' (', role, ')'), ''), ' stopped: last used on ', CAST(last_day AS VARCHAR), ', ',
               CAST({{to}} AS BIGINT) - CAST(last_day AS BIGINT), ' days without use up to ', CAST({{to}} AS VARCHAR)),
        CAST(CAST({{to}} AS BIGINT) - CAST(last_day AS BIGINT) AS DOUBLE), CAST(NULL AS DOUBLE), user_id
    FROM key_last
    WHERE last_day >= {{from}} AND CAST({{to}} AS BIGINT) - CAST(last_day AS BIGINT) >= {{days}}
    UNION ALL
    SELECT as_of, 'band_change', 4, concat('health band ', band_before, ' -> ', band, ' (health ', round(health_before, 1), ' -> ', round(health, 1), ')'),
        health, health - health_before, CAST(NULL AS VARCHAR)
    FROM bands
    WHERE band_before IS NOT NULL AND band <> band_before
    UNION ALL
    SELECT greatest(first_seen, {{from}}), 'alert', 5, concat('alert ', rule, ' (', severity, ') open since ', CAST(first_seen AS VARCHAR), ': ', reason),
        CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR)
    FROM open_alerts
    UNION ALL
    SELECT CAST(i.at AS DATE), 'intervention', 6, concat(i.kind, ' by ', coalesce(i.csm, 'a CSM'), coalesce(concat(': ', i.note), '')),
        CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), i.csm
    FROM interventions i
    WHERE i.org_id = {{org_id}} AND CAST(i.at AS DATE) >= {{from}} AND CAST(i.at AS DATE) <= {{to}}
    UNION ALL
    -- A row's start: a new subscription, a return after a gap, or a change of price or plan.
    SELECT starts_on, 'subscription', 7,
        CASE
            WHEN mrr_before IS NULL THEN concat('subscription ', subscription_id, ' started: ', plan, ' at ', mrr, ' MRR')
            WHEN ended_before < starts_on THEN concat('subscription ', subscription_id, ' resumed after ', CAST(starts_on AS BIGINT) - CAST(ended_before AS BIGINT), ' days: ', plan, ' at ', mrr, ' MRR')
            ELSE concat('subscription ', subscription_id, CASE WHEN mrr > mrr_before THEN ' expanded' WHEN mrr < mrr_before THEN ' contracted' ELSE ' changed' END,
                        ': ', plan_before, ' at ', mrr_before, ' -> ', plan, ' at ', mrr, ' MRR')
        END,
        mrr, mrr - coalesce(CASE WHEN ended_before >= starts_on THEN mrr_before END, 0.0), CAST(NULL AS VARCHAR)
    FROM subs
    WHERE starts_on >= {{from}} AND starts_on <= {{to}}
    UNION ALL
    -- A row's end with nothing following on that day: the subscription ended (ends_on is the first day not paid for).
    SELECT ends_on, 'subscription', 7, concat('subscription ', subscription_id, ' ended: ', plan, ' at ', mrr, ' MRR'),
        0.0, -mrr, CAST(NULL AS VARCHAR)
    FROM subs
    WHERE ends_on IS NOT NULL AND (next_start IS NULL OR next_start > ends_on) AND ends_on >= {{from}} AND ends_on <= {{to}}
)
SELECT CAST(day AS DATE) AS day, kind, CAST(kind_rank AS BIGINT) AS kind_rank, detail, value, change, who FROM story

-- account_lifecycle(as_of DATE): per account: lifecycle stage (onboarding until the configured milestones are all reached, then adoption, then growth; renewal when the renewal date is near), time from sign-up to first value, the milestones reached and the next one
-- params: as_of DATE
-- order: org_id
WITH ms(pos, event) AS (
    VALUES ${lifecycle.milestone_rows}
),
bounds AS (
    SELECT min(event_date) AS first_day FROM events
),
firsts AS (
    SELECT e.org_id, CAST(e.event AS VARCHAR) AS event, min(e.event_time) AS at
    FROM events e
    WHERE e.event IN (SELECT event FROM ms) AND e.event_date <= $1
    GROUP BY e.org_id, e.event
),
reached AS (
    SELECT f.org_id, ms.pos, ms.event, f.at
    FROM firsts f JOIN ms ON ms.event = f.event
),
per AS (
    SELECT org_id, count(*) AS reached, max(at) AS last_at, string_agg(event, ', ' ORDER BY pos) AS reached_list
    FROM reached
    GROUP BY org_id
),
missing AS (
    SELECT a.org_id, min(ms.pos) AS next_pos
    FROM accounts a
    CROSS JOIN ms
    LEFT JOIN reached r ON r.org_id = a.org_id AND r.pos = ms.pos
    WHERE r.org_id IS NULL
    GROUP BY a.org_id
),
total AS (
    SELECT count(*) AS n FROM ms
),
joined AS (
    SELECT
        a.org_id, a.name, a.plan, a.is_paid, a.csm, a.renewal_date,
        CAST(a.signup_time AS DATE) AS signup_date,
        a.signup_time,
        -- Accounts older than the data reached their milestones before it.
        coalesce(CAST(a.signup_time AS DATE) < b.first_day, false) AS predates_data,
        coalesce(p.reached, 0) AS reached,
        t.n AS total,
        p.last_at,
        p.reached_list,
        nx.event AS next_milestone
    FROM accounts a
    CROSS JOIN bounds b
    CROSS JOIN total t
    LEFT JOIN per p ON p.org_id = a.org_id
    LEFT JOIN missing m ON m.org_id = a.org_id
    LEFT JOIN ms nx ON nx.pos = m.next_pos
    WHERE a.signup_time IS NULL OR CAST(a.signup_time AS DATE) <= $1
)
SELECT
    org_id, name, plan, is_paid, csm,
    CASE WHEN renewal_date IS NOT NULL AND renewal_date >= $1
              AND CAST(renewal_date AS INT) - CAST($1 AS INT) <= ${lifecycle.renewal_days} THEN 'renewal'
         WHEN reached < total AND NOT predates_data THEN 'onboarding'
         WHEN CAST($1 AS INT) - CAST(CAST(coalesce(CASE WHEN predates_data THEN signup_time END, last_at, signup_time) AS DATE) AS INT) <= ${lifecycle.adoption_days} THEN 'adoption'
         ELSE 'growth' END AS stage,
    signup_date,
    CASE WHEN reached = total AND NOT predates_data THEN last_at END AS first_value_at,
    CASE WHEN reached = total AND NOT predates_data
         THEN (CAST(last_at AS BIGINT) - CAST(signup_time AS BIGINT)) / 86400000000.0 END AS days_to_first_value,
    CAST(reached AS BIGINT) AS milestones_reached,
    CAST(total AS BIGINT) AS milestones_total,
    reached_list AS milestones,
    next_milestone,
    predates_data AS signed_up_before_data,
    renewal_date,
    CAST(renewal_date AS INT) - CAST($1 AS INT) AS days_to_renewal
FROM joined

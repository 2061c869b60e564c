-- health_scores(as_of DATE, days BIGINT): per account: health 0-100 (share of seats active, visits, minutes, breadth of core modules, key users active), temperature 0-100 (visit trend, paid, time to renewal, user growth, admins and key users active), quadrant and its play, colour band, change against the previous period, and the measure that moved health most
-- params: as_of DATE, days BIGINT, prev2_start DATE
-- order: health, org_id
WITH asof AS (
    SELECT CAST($1 AS DATE) AS as_of, $2 AS period_days
),
ev AS (
    -- w = 0: the last `days` days up to as_of; w = 1 and 2: the periods before.
    SELECT CAST($1 AS DATE) AS as_of, org_id, user_id, session_id, duration_ms, module, (CAST($1 AS INT) - CAST(event_date AS INT)) / $2 AS w
    FROM events
    WHERE event_date >= $3 AND event_date <= $1
),
${part:health_scoring}
SELECT * EXCLUDE (as_of) FROM scores

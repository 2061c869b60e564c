-- Shared by health_scores and health_history (`${part:health_measures}`).
-- Given `grid` (per as_of, account and window w = 0 for the period_days up
-- to as_of and 1, 2 for the periods before: usage, seats, key users, admins,
-- renewal date) and `core` (per as_of, how many core modules count for
-- breadth), the CTEs `measures` and `health`: each measure and the health
-- they make, per as_of, account and window. The reports hold `health` in a
-- stage: the scoring reads it four times.
measures AS (
    SELECT
        g.*,
        least(CAST(g.active_users AS DOUBLE) / greatest(coalesce(g.seats, g.active_users), 1), 1.0) AS m_seats,
        percent_rank() OVER (PARTITION BY g.as_of, g.w ORDER BY g.visits) AS m_visits,
        percent_rank() OVER (PARTITION BY g.as_of, g.w ORDER BY g.minutes) AS m_duration,
        least(CAST(g.modules_used AS DOUBLE) / core.modules, 1.0) AS m_breadth,
        CASE WHEN g.key_users > 0 THEN least(CAST(g.key_active AS DOUBLE) / g.key_users, 1.0) END AS m_key,
        CASE WHEN g.admins > 0 THEN least(CAST(g.admins_active AS DOUBLE) / g.admins, 1.0) END AS m_admins
    FROM grid g JOIN core ON core.as_of = g.as_of
),
-- Without key users (or admins) on record, the seat measure stands in.
health AS (
    SELECT
        m.*,
        coalesce(m_key, m_seats) AS m_key_users,
        100.0 * (
            ${health.weights.active_seats} * m_seats
            + ${health.weights.visits} * m_visits
            + ${health.weights.duration} * m_duration
            + ${health.weights.breadth} * m_breadth
            + ${health.weights.key_users} * coalesce(m_key, m_seats)
        ) / (${health.weights.active_seats} + ${health.weights.visits} + ${health.weights.duration} + ${health.weights.breadth} + ${health.weights.key_users}) AS health
    FROM measures m
)

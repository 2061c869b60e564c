-- Shared by health_scores and health_history (`${part:health_scoring}`).
-- Given `health` (the stage of `${part:health_measures}`), the CTEs up to
-- `scores`: per as_of and account, health, temperature, quadrant, play,
-- band, their change, the measure that moved most, and each measure.
temp AS (
    SELECT
        c.*,
        -- -100% maps to 0, no change to 0.5, +100% and more to 1; from nothing to something is 1.
        CASE WHEN p.visits > 0 THEN greatest(least(0.5 + (c.visits - p.visits) * 50.0 / p.visits / 100.0, 1.0), 0.0)
             WHEN c.visits > 0 THEN 1.0 ELSE 0.0 END AS t_trend,
        CASE WHEN c.is_paid THEN 1.0 ELSE 0.0 END AS t_paid,
        CASE WHEN c.renewal_date IS NULL THEN 0.5
             ELSE greatest(least((CAST(c.renewal_date AS INT) - (CAST(c.as_of AS INT) - c.w * c.period_days)) / ${temperature.renewal_horizon_days}, 1.0), 0.0) END AS t_renewal,
        CASE WHEN p.active_users > 0 THEN greatest(least(0.5 + (c.active_users - p.active_users) * 50.0 / p.active_users / 100.0, 1.0), 0.0)
             WHEN c.active_users > 0 THEN 1.0 ELSE 0.0 END AS t_growth,
        coalesce(c.m_admins, c.m_seats) AS t_admins
    FROM health c
    JOIN health p ON p.org_id = c.org_id AND p.as_of = c.as_of AND p.w = c.w + 1
),
scored AS (
    SELECT
        t.*,
        100.0 * (
            ${temperature.weights.trend} * t_trend
            + ${temperature.weights.paid} * t_paid
            + ${temperature.weights.renewal} * t_renewal
            + ${temperature.weights.seat_growth} * t_growth
            + ${temperature.weights.admins} * t_admins
        ) / (${temperature.weights.trend} + ${temperature.weights.paid} + ${temperature.weights.renewal} + ${temperature.weights.seat_growth} + ${temperature.weights.admins}) AS temperature
    FROM temp t
),
pairs AS (
    SELECT
        c.*,
        p.health AS health_prev,
        p.temperature AS temperature_prev,
        -- Each measure's contribution to the change in health, in points.
        100.0 * ${health.weights.active_seats} * (c.m_seats - p.m_seats) AS d_seats,
        100.0 * ${health.weights.visits} * (c.m_visits - p.m_visits) AS d_visits,
        100.0 * ${health.weights.duration} * (c.m_duration - p.m_duration) AS d_duration,
        100.0 * ${health.weights.breadth} * (c.m_breadth - p.m_breadth) AS d_breadth,
        100.0 * ${health.weights.key_users} * (c.m_key_users - p.m_key_users) AS d_key_users
    FROM scored c
    JOIN scored p ON p.org_id = c.org_id AND p.as_of = c.as_of AND p.w = 1
    WHERE c.w = 0
),
scores AS (
    SELECT
        as_of, org_id, name, plan, is_paid, csm,
        health,
        temperature,
        CASE WHEN health >= ${health.healthy_from} AND temperature >= ${temperature.warm_from} THEN 'healthy and warm'
             WHEN health >= ${health.healthy_from} THEN 'healthy but cold'
             WHEN temperature >= ${temperature.warm_from} THEN 'warm but unhealthy'
             ELSE 'cold and unhealthy' END AS quadrant,
        CASE WHEN health >= ${health.healthy_from} AND temperature >= ${temperature.warm_from} THEN 'expand or renew'
             WHEN health >= ${health.healthy_from} THEN 'find out why they do not convert'
             WHEN temperature >= ${temperature.warm_from} THEN 'train them to use it more often'
             ELSE 'at risk: intervene' END AS play,
        CASE WHEN health < ${health.red_below} THEN 'red' WHEN health < ${health.green_from} THEN 'yellow' ELSE 'green' END AS band,
        health_prev,
        health - health_prev AS health_change,
        temperature_prev,
        temperature - temperature_prev AS temperature_change,
        CASE greatest(abs(d_seats), abs(d_visits), abs(d_duration), abs(d_breadth), abs(d_key_users))
            WHEN 0 THEN NULL
            WHEN abs(d_seats) THEN 'active_seats'
            WHEN abs(d_visits) THEN 'visits'
            WHEN abs(d_duration) THEN 'duration'
            WHEN abs(d_breadth) THEN 'breadth'
            ELSE 'key_users' END AS moved_most,
        active_users, seats, visits, minutes, modules_used, key_active AS key_users_active, key_users,
        m_seats AS active_seat_share, m_visits AS visits_percentile, m_duration AS minutes_percentile, m_breadth AS breadth_share, m_key_users AS key_user_share,
        t_trend AS trend_score, t_renewal AS renewal_score, t_growth AS growth_score, t_admins AS admins_score
    FROM pairs
)

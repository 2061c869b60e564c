-- retention_matrix(cohort_event EVENT, return_event EVENT, period VARCHAR = week, periods BIGINT = 8, mode VARCHAR = first_time, from DATE = first, to DATE = last, unit VARCHAR = user): users (accounts, by account: any member's event counts) in cohorts by the period of their first cohort_event (mode recurring: of each one), and the share who did return_event k = 0..periods periods later; the rows with cohort_start NULL are the retention curve, weighted over the cohorts that reached period k
-- order: cohort_start NULLS FIRST, period_k
-- Each cohort's cells, held once: the matrix and its all-cohorts row both
-- read them (SQL would compute them, reading the events, for each).
-- stage cells
WITH ce AS (
    SELECT DISTINCT {{unit_col}} AS user_id, {{idx}} AS p
    FROM events
    WHERE event = {{cohort_event}} AND event_date <= {{to}}
),
cohorts AS (
    SELECT user_id, p FROM (
        SELECT user_id, p FROM ce WHERE {{recurring}}
        UNION ALL
        SELECT user_id, min(p) AS p FROM ce WHERE NOT {{recurring}} GROUP BY user_id
    ) c
    WHERE p >= {{from_idx}}
),
returns AS (
    SELECT DISTINCT {{unit_col}} AS user_id, {{idx}} AS p
    FROM events
    WHERE event = {{return_event}} AND event_date >= {{from}} AND event_date <= {{to}}
),
sizes AS (
    SELECT p, count(*) AS users FROM cohorts GROUP BY p
),
ks AS (
    SELECT value AS k FROM generate_series(0, {{periods}})
),
hits AS (
    SELECT c.p, r.p - c.p AS k, count(*) AS users
    FROM cohorts c
    JOIN returns r ON r.user_id = c.user_id AND r.p >= c.p AND r.p <= c.p + {{periods}}
    GROUP BY c.p, r.p - c.p
),
cells AS (
    -- A cell whose period lies after `to` is not observed yet: NULL, not 0.
    SELECT
        s.p,
        s.users AS cohort_users,
        ks.k,
        CASE WHEN s.p + ks.k <= {{last_idx}} THEN coalesce(h.users, 0) END AS retained
    FROM sizes s
    CROSS JOIN ks
    LEFT JOIN hits h ON h.p = s.p AND h.k = ks.k
)
SELECT * FROM cells;
SELECT cohort_start, cohort_users, period_k, retained_users, retained_pct FROM (
    SELECT
        {{period_start}} AS cohort_start,
        CAST(cohort_users AS BIGINT) AS cohort_users,
        CAST(k AS BIGINT) AS period_k,
        CAST(retained AS BIGINT) AS retained_users,
        100.0 * retained / cohort_users AS retained_pct
    FROM cells
    UNION ALL
    SELECT
        CAST(NULL AS DATE),
        CAST(sum(CASE WHEN retained IS NOT NULL THEN cohort_users END) AS BIGINT),
        CAST(k AS BIGINT),
        CAST(sum(retained) AS BIGINT),
        100.0 * sum(retained) / sum(CASE WHEN retained IS NOT NULL THEN cohort_users END)
    FROM cells
    GROUP BY k
) m

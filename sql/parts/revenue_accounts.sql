-- Shared by revenue_retention and revenue_movements (`${part:revenue_accounts}`):
-- the calendar periods from the one holding `from` to the one holding
-- `to`, and each account's MRR in force on the day before each period and on
-- its last day (on `to` for the period holding it), with the plans in force
-- then and the last day in the period a row started or ended; and `first_paid`,
-- each account's first day with MRR above 0 (new or reactivation). MRR is
-- summed as a decimal of 6 places: sums of doubles depend on the order rows
-- arrive in, and a report must give the same figures on every run.
periods AS (
    SELECT
        CAST(p AS DATE) AS period_start,
        CAST(p AS DATE) - INTERVAL '1 day' AS start_day,
        least(CAST(p + {{period_interval}} AS DATE) - INTERVAL '1 day', {{to}}) AS period_end
    FROM unnest(range(date_trunc({{period}}, CAST({{from}} AS TIMESTAMP)), CAST({{to}} AS TIMESTAMP) + INTERVAL '1 day', {{period_interval}})) AS r(p)
),
-- The same judgement as revenue_retention: MRR in force on the day before
-- the period and on its last day, with the plans of the rows in force.
account_mrr AS (
    SELECT
        p.period_start,
        p.period_end,
        s.org_id,
        sum(CASE WHEN s.starts_on <= p.start_day AND (s.ends_on IS NULL OR s.ends_on > p.start_day) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr_start,
        sum(CASE WHEN s.starts_on <= p.period_end AND (s.ends_on IS NULL OR s.ends_on > p.period_end) THEN CAST(s.mrr AS DECIMAL(38, 6)) ELSE 0 END) AS mrr_end,
        array_to_string(array_sort(array_distinct(array_agg(CASE WHEN s.starts_on <= p.start_day AND (s.ends_on IS NULL OR s.ends_on > p.start_day) THEN s.plan END))), ', ') AS plan_before,
        array_to_string(array_sort(array_distinct(array_agg(CASE WHEN s.starts_on <= p.period_end AND (s.ends_on IS NULL OR s.ends_on > p.period_end) THEN s.plan END))), ', ') AS plan_after,
        -- A row starting or ending (the first day not paid for) inside the period changed it.
        max(CASE WHEN s.starts_on >= p.period_start AND s.starts_on <= p.period_end THEN s.starts_on END) AS last_start,
        max(CASE WHEN s.ends_on >= p.period_start AND s.ends_on <= p.period_end THEN s.ends_on END) AS last_end
    FROM periods p
    JOIN subscriptions s ON s.starts_on <= p.period_end AND (s.ends_on IS NULL OR s.ends_on > p.start_day)
    GROUP BY p.period_start, p.period_end, s.org_id
),
first_paid AS (
    SELECT org_id, min(starts_on) AS first_paid FROM subscriptions WHERE mrr > 0 GROUP BY org_id
)

-- revenue_retention(period VARCHAR = month, from DATE = first, to DATE = last): per calendar period from the one holding `from` to the one holding `to`: MRR at the start, what new accounts, expansions, contractions, churn and reactivations added or took away, MRR at the end, net and gross revenue retention in percent, and the count of paying accounts (logos) at the start, new, reactivated, churned and at the end; each account's movement is judged on its MRR on the day before the period and on its last day (on `to` for the period holding it)
-- periods: week, month, quarter, year
-- dates: any
-- needs: subscriptions
-- order: period_start
WITH ${part:revenue_accounts},
moves AS (
    SELECT
        m.period_start,
        m.mrr_start,
        m.mrr_end,
        CASE
            WHEN m.mrr_start = 0 AND m.mrr_end > 0 AND f.first_paid >= m.period_start THEN 'new'
            WHEN m.mrr_start = 0 AND m.mrr_end > 0 THEN 'reactivation'
            WHEN m.mrr_start > 0 AND m.mrr_end = 0 THEN 'churned'
            WHEN m.mrr_end > m.mrr_start THEN 'expansion'
            WHEN m.mrr_end < m.mrr_start THEN 'contraction'
        END AS kind
    FROM account_mrr m
    LEFT JOIN first_paid f ON f.org_id = m.org_id
),
totals AS (
    SELECT
        p.period_start,
        p.period_end,
        CAST(coalesce(sum(m.mrr_start), 0) AS DOUBLE) AS mrr_start,
        CAST(coalesce(sum(CASE WHEN m.kind = 'new' THEN m.mrr_end END), 0) AS DOUBLE) AS new_mrr,
        CAST(coalesce(sum(CASE WHEN m.kind = 'expansion' THEN m.mrr_end - m.mrr_start END), 0) AS DOUBLE) AS expansion,
        CAST(coalesce(sum(CASE WHEN m.kind = 'contraction' THEN m.mrr_start - m.mrr_end END), 0) AS DOUBLE) AS contraction,
        CAST(coalesce(sum(CASE WHEN m.kind = 'churned' THEN m.mrr_start END), 0) AS DOUBLE) AS churned,
        CAST(coalesce(sum(CASE WHEN m.kind = 'reactivation' THEN m.mrr_end END), 0) AS DOUBLE) AS reactivation,
        CAST(coalesce(sum(m.mrr_end), 0) AS DOUBLE) AS mrr_end,
        count(CASE WHEN m.mrr_start > 0 THEN 1 END) AS logos_start,
        count(CASE WHEN m.kind = 'new' THEN 1 END) AS logos_new,
        count(CASE WHEN m.kind = 'reactivation' THEN 1 END) AS logos_reactivated,
        count(CASE WHEN m.kind = 'churned' THEN 1 END) AS logos_churned,
        count(CASE WHEN m.mrr_end > 0 THEN 1 END) AS logos_end
    FROM periods p
    LEFT JOIN moves m ON m.period_start = p.period_start
    GROUP BY p.period_start, p.period_end
)
SELECT
    period_start,
    period_end,
    mrr_start,
    new_mrr AS "new",
    expansion,
    contraction,
    churned,
    reactivation,
    mrr_end,
    100.0 * (mrr_start + expansion - contraction - churned) / nullif(mrr_start, 0.0) AS nrr_pct,
    100.0 * (mrr_start - contraction - churned) / nullif(mrr_start, 0.0) AS grr_pct,
    logos_start,
    logos_new,
    logos_reactivated,
    logos_churned,
    logos_end,
    100.0 * logos_churned / nullif(logos_start, 0) AS logo_churn_pct
FROM totals

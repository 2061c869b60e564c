-- revenue_movements(from DATE = first, to DATE = last, period VARCHAR = month): what revenue_retention's totals are made of: per period and account whose MRR moved, the kind (new, expansion, contraction, churned, reactivation), MRR and plans on the day before the period and on its last day, the change, and the day of the account's last subscription change in the period
-- periods: week, month, quarter, year
-- dates: any
-- needs: subscriptions
-- order: period_start, kind, org_id
WITH ${part:revenue_accounts}
SELECT
    m.period_start,
    m.org_id,
    a.name,
    a.csm,
    CASE
        WHEN m.mrr_start = 0 AND f.first_paid >= m.period_start THEN 'new'
        WHEN m.mrr_start = 0 THEN 'reactivation'
        WHEN m.mrr_end = 0 THEN 'churned'
        WHEN m.mrr_end > m.mrr_start THEN 'expansion'
        ELSE 'contraction'
    END AS kind,
    CAST(m.mrr_start AS DOUBLE) AS mrr_before,
    CAST(m.mrr_end AS DOUBLE) AS mrr_after,
    CAST(m.mrr_end - m.mrr_start AS DOUBLE) AS mrr_change,
    greatest(m.last_start, m.last_end) AS changed_on,
    nullif(m.plan_before, '') AS plan_before,
    nullif(m.plan_after, '') AS plan_after
FROM account_mrr m
LEFT JOIN first_paid f ON f.org_id = m.org_id
LEFT JOIN accounts a ON a.org_id = m.org_id
WHERE m.mrr_start <> m.mrr_end

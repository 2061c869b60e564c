-- churn_risk(as_of DATE = last, horizon_days BIGINT = 90): per paying account on as_of: the probability in percent that it stops paying within horizon_days, from its usage measures, their trend and MRR, by a logistic regression trained on the lake's own history (every week whose horizon has passed by as_of; see churn_model for how well it ranks), its rank and decile (1 = riskiest tenth), and the three features that raise its risk most
-- order: risk_rank
-- needs: subscriptions
${part:churn_points}
-- stage model
SELECT m['intercept'] AS b0, m['coefficients'] AS w, m['means'] AS mu, m['stds'] AS sd, m['rows'] AS rows, m['positives'] AS positives
FROM (SELECT logistic_regression(churned, {{features}}) AS m FROM points WHERE churned IS NOT NULL);
WITH today AS (
    SELECT p.*, 1.0 / (1.0 + exp(-({{log_odds}}))) AS risk
    FROM points p CROSS JOIN model m
    WHERE p.as_of = {{as_of}}
),
-- Each feature's part of the account's log-odds against an average account.
parts AS (
    SELECT t.org_id, f.name, m.w[f.i] * (array_element({{features}}, f.i) - m.mu[f.i]) / m.sd[f.i] AS part
    FROM today t CROSS JOIN model m CROSS JOIN (VALUES {{feature_rows}}) AS f(i, name)
),
top AS (
    SELECT org_id, name, row_number() OVER (PARTITION BY org_id ORDER BY part DESC, name) AS k FROM parts WHERE part > 0
)
SELECT
    t.org_id,
    t.name,
    t.plan,
    t.csm,
    t.mrr,
    100.0 * t.risk AS churn_risk_pct,
    CAST(row_number() OVER (ORDER BY t.risk DESC, t.org_id) AS BIGINT) AS risk_rank,
    CAST(ntile(10) OVER (ORDER BY t.risk DESC, t.org_id) AS BIGINT) AS risk_decile,
    max(CASE WHEN k.k = 1 THEN k.name END) AS raises_most,
    max(CASE WHEN k.k = 2 THEN k.name END) AS raises_second,
    max(CASE WHEN k.k = 3 THEN k.name END) AS raises_third,
    t.health,
    t.band,
    CAST((SELECT rows FROM model) AS BIGINT) AS training_rows,
    CAST((SELECT positives FROM model) AS BIGINT) AS training_churned
FROM today t
LEFT JOIN top k ON k.org_id = t.org_id AND k.k <= 3
GROUP BY t.org_id, t.name, t.plan, t.csm, t.mrr, t.risk, t.health, t.band

-- churn_model(as_of DATE = last, horizon_days BIGINT = 90): how well the lake's own history predicts that a paying account stops paying within horizon_days: a logistic regression of "stopped paying within horizon_days" on the usage measures, their trend and MRR of paying accounts every week, trained on the earlier dates and evaluated on the later third (held out): the AUC on both, each feature's coefficient (log-odds per standard deviation), and the held-out calibration by decile of predicted risk
-- order: line
-- needs: subscriptions
${part:churn_points}
-- stage model
SELECT m['intercept'] AS b0, m['coefficients'] AS w, m['means'] AS mu, m['stds'] AS sd, m['rows'] AS rows, m['positives'] AS positives
FROM (SELECT logistic_regression(churned, {{features}}) AS m FROM points WHERE churned IS NOT NULL AND as_of < {{first_held_out}});
-- The intercept first, then the features by the size of their coefficient.
-- stage coef
SELECT f.name, CASE WHEN f.i = 0 THEN m.b0 ELSE m.w[f.i] END AS value, CASE WHEN f.i = 0 THEN 0 ELSE 1 END AS first,
    abs(CASE WHEN f.i = 0 THEN m.b0 ELSE m.w[f.i] END) AS strength, m.rows, m.positives
FROM (VALUES (0, 'intercept'), {{feature_rows}}) AS f(i, name) CROSS JOIN model m;
WITH predicted AS (
    SELECT p.as_of, p.org_id, p.churned, p.as_of >= {{first_held_out}} AS held_out, 1.0 / (1.0 + exp(-({{log_odds}}))) AS risk
    FROM points p CROSS JOIN model m
    WHERE p.churned IS NOT NULL
),
-- AUC as the Mann-Whitney statistic: the chance that a churned row outranks a
-- kept one (ties count a half), from the rows' ranks by risk.
ranked AS (
    SELECT held_out, churned, risk,
        rank() OVER (PARTITION BY held_out ORDER BY risk) + (count(*) OVER (PARTITION BY held_out, risk) - 1) / 2.0 AS r
    FROM predicted
),
auc AS (
    SELECT held_out, count(*) AS n, sum(CASE WHEN churned THEN 1 ELSE 0 END) AS pos,
        (sum(CASE WHEN churned THEN r ELSE 0 END) - sum(CASE WHEN churned THEN 1 ELSE 0 END) * (sum(CASE WHEN churned THEN 1 ELSE 0 END) + 1) / 2.0)
          / nullif(CAST(sum(CASE WHEN churned THEN 1 ELSE 0 END) AS DOUBLE) * sum(CASE WHEN churned THEN 0 ELSE 1 END), 0) AS auc
    FROM ranked
    GROUP BY held_out
),
dates AS (
    SELECT held_out, min(as_of) AS first_as_of, max(as_of) AS last_as_of FROM predicted GROUP BY held_out
),
-- Held-out rows in ten groups by predicted risk, highest first.
deciles AS (
    SELECT churned, risk, ntile(10) OVER (ORDER BY risk DESC, org_id, as_of) AS decile FROM predicted WHERE held_out
)
-- `line` orders the rows: the AUCs, then the coefficients by strength, then the deciles.
SELECT CASE WHEN a.held_out THEN 1 ELSE 2 END AS line, 'evaluation' AS section, CASE WHEN a.held_out THEN 'auc_held_out' ELSE 'auc_training' END AS item,
    CAST(NULL AS BIGINT) AS decile, a.auc AS value, CAST(a.n AS BIGINT) AS rows, CAST(a.pos AS BIGINT) AS churned,
    CAST(NULL AS DOUBLE) AS predicted_pct, CAST(NULL AS DOUBLE) AS observed_pct, d.first_as_of, d.last_as_of
FROM auc a JOIN dates d ON d.held_out = a.held_out
UNION ALL
SELECT 10 + row_number() OVER (ORDER BY c.first, c.strength DESC, c.name), 'coefficient', c.name, CAST(NULL AS BIGINT),
    c.value, CAST(c.rows AS BIGINT), CAST(c.positives AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE),
    d.first_as_of, d.last_as_of
FROM coef c CROSS JOIN dates d
WHERE NOT d.held_out
UNION ALL
SELECT 100 + c.decile, 'calibration', concat('decile ', c.decile), CAST(c.decile AS BIGINT), CAST(NULL AS DOUBLE), c.n, c.pos, c.predicted_pct, c.observed_pct, d.first_as_of, d.last_as_of
FROM (
    SELECT decile, count(*) AS n, sum(CASE WHEN churned THEN 1 ELSE 0 END) AS pos,
        100.0 * avg(risk) AS predicted_pct, 100.0 * avg(CASE WHEN churned THEN 1.0 ELSE 0.0 END) AS observed_pct
    FROM deciles
    GROUP BY decile
) c CROSS JOIN dates d
WHERE d.held_out

-- paths(start_event EVENT = '', end_event EVENT = '', steps BIGINT = 5, window INTERVAL = 1 day, unit VARCHAR = user, from DATE = first, to DATE = last, ignore VARCHAR = '', top BIGINT = 20): the most common sequences of events after start_event (leading to end_event when only it is given, between both when both are; from each one's first event when neither is), within window of it, per user or per account (unit), repeated events collapsed, cut at steps; the top paths and one 'other' row, with the users on each (accounts, by account), their share of all at the anchor (the rows add up to 100) and, with end_event, the share who reached it
-- order: rank
WITH ${part:path_steps},
per_unit AS (
    SELECT s.unit, array_agg(s.event ORDER BY s.step) AS path, bool_or(r.reached) AS reached
    FROM stepped s JOIN reach r ON r.unit = s.unit
    GROUP BY s.unit
),
counted AS (
    SELECT path, count(*) AS users, sum(CASE WHEN reached THEN 1 ELSE 0 END) AS reached
    FROM per_unit
    GROUP BY path
),
ranked AS (
    SELECT path, array_to_string(path, ' → ') AS path_text, users, reached,
           row_number() OVER (ORDER BY users DESC, array_to_string(path, ' → ')) AS rank
    FROM counted
),
total AS (SELECT count(*) AS n FROM anchors)
SELECT
    CAST(r.rank AS BIGINT) AS rank,
    r.path,
    CAST(r.path_text AS VARCHAR) AS path_text,
    CAST(cardinality(r.path) AS BIGINT) AS steps,
    CAST(r.users AS BIGINT) AS users,
    100.0 * r.users / nullif(t.n, 0) AS share_pct,
    CASE WHEN {{has_end}} THEN 100.0 * r.reached / r.users END AS reached_end_pct
FROM ranked r CROSS JOIN total t
WHERE r.rank <= {{top}}
UNION ALL
SELECT
    -- An aggregate, not a constant: DataFusion 55 pushes a filter on a
    -- constant column below an aggregate without GROUP BY, which then still
    -- gives its row.
    CAST({{top}} + 1 + 0 * count(*) AS BIGINT) AS rank,
    NULL AS path,
    CAST('other' AS VARCHAR) AS path_text,
    CAST(NULL AS BIGINT) AS steps,
    CAST(coalesce(sum(r.users), 0) AS BIGINT) AS users,
    100.0 * coalesce(sum(r.users), 0) / nullif(max(t.n), 0) AS share_pct,
    CASE WHEN {{has_end}} THEN 100.0 * sum(r.reached) / nullif(sum(r.users), 0) END AS reached_end_pct
FROM ranked r RIGHT JOIN total t ON r.rank > {{top}}

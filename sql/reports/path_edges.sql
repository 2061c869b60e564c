-- path_edges(start_event EVENT = '', end_event EVENT = '', steps BIGINT = 5, window INTERVAL = 1 day, unit VARCHAR = user, from DATE = first, to DATE = last, ignore VARCHAR = ''): the same paths as paths, as the edges of a Sankey diagram: how many users (accounts, by account) go from from_event at step to to_event at step + 1
-- order: step, users DESC, from_event, to_event
WITH ${part:path_steps},
edges AS (
    SELECT step, event, lead(event) OVER (PARTITION BY unit ORDER BY step) AS next FROM stepped
)
SELECT CAST(step AS BIGINT) AS step, CAST(event AS VARCHAR) AS from_event, CAST(next AS VARCHAR) AS to_event, CAST(count(*) AS BIGINT) AS users
FROM edges
WHERE next IS NOT NULL
GROUP BY step, event, next

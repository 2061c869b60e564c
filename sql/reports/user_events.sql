-- user_events(user_id VARCHAR, from DATE = first, to DATE = last, limit BIGINT = 500): one person's events from `from` to `to`, the latest first, at most limit: time, event, module, page, session, minutes of a page view, account and properties; what a user who dropped out of a funnel (funnel_dropoffs) did, read one event at a time
-- order: event_time DESC, event
SELECT
    event_time,
    CAST(event AS VARCHAR) AS event,
    CAST(module AS VARCHAR) AS module,
    CAST(page AS VARCHAR) AS page,
    CAST(session_id AS VARCHAR) AS session_id,
    duration_ms / 60000.0 AS minutes,
    CAST(org_id AS VARCHAR) AS org_id,
    CAST(properties AS VARCHAR) AS properties
FROM events
WHERE user_id = {{user_id}} AND event_date >= {{from}} AND event_date <= {{to}}
ORDER BY event_time DESC, event
LIMIT {{limit}}

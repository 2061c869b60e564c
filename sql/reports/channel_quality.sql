-- channel_quality(from DATE, to DATE): per utm_source, utm_medium, utm_campaign: visitors, visits, new users, bounce rate, average visit minutes, pages per visit, sign-up and conversion rates
-- params: from DATE, to DATE
-- order: visitors DESC, utm_source, utm_medium, utm_campaign
WITH visits AS (
    SELECT
        user_id,
        session_id,
        min(utm_source) AS utm_source,
        min(utm_medium) AS utm_medium,
        min(utm_campaign) AS utm_campaign,
        sum(CASE WHEN event = ${page_view} THEN 1 ELSE 0 END) AS pages,
        coalesce(sum(duration_ms), 0) AS ms,
        max(CASE WHEN event = ${signup} THEN 1 ELSE 0 END) AS signed_up
    FROM events
    WHERE event_date >= $1 AND event_date <= $2 AND session_id IS NOT NULL
    GROUP BY user_id, session_id
),
labelled AS (
    SELECT
        user_id, pages, ms, signed_up,
        coalesce(utm_source, '(direct)') AS utm_source,
        coalesce(utm_medium, '(none)') AS utm_medium,
        coalesce(utm_campaign, '(none)') AS utm_campaign
    FROM visits
),
converted AS (
    SELECT DISTINCT user_id
    FROM events
    WHERE event_date >= $1 AND event_date <= $2 AND event = ${conversion}
),
per_channel AS (
    SELECT
        l.utm_source, l.utm_medium, l.utm_campaign,
        count(DISTINCT l.user_id) AS visitors,
        count(*) AS visits,
        count(DISTINCT CASE WHEN l.signed_up = 1 THEN l.user_id END) AS new_users,
        count(DISTINCT CASE WHEN l.signed_up = 1 AND c.user_id IS NOT NULL THEN l.user_id END) AS converted_users,
        sum(CASE WHEN l.pages <= 1 THEN 1 ELSE 0 END) AS bounces,
        sum(l.ms) AS ms,
        sum(l.pages) AS pages
    FROM labelled l
    LEFT JOIN converted c ON l.user_id = c.user_id
    GROUP BY l.utm_source, l.utm_medium, l.utm_campaign
)
SELECT
    utm_source, utm_medium, utm_campaign,
    visitors, visits, new_users,
    100.0 * bounces / visits AS bounce_rate_pct,
    ms / 60000.0 / visits AS avg_visit_min,
    1.0 * pages / visits AS pages_per_visit,
    100.0 * new_users / visitors AS signup_rate_pct,
    ratio(100.0 * converted_users, new_users) AS conversion_pct
FROM per_channel

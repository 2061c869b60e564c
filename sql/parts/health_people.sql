-- Shared by health_scores and health_history (`${part:health_people}`):
-- per account, its key users and its admins (key users count as admins);
-- and the accounts with their names, plans and CSMs as plain strings: a
-- string view keeps the buffers of the file it was read from, and the grid
-- repeats each account at every date and window through joins that gather
-- those buffers again in every batch.
people AS (
    SELECT
        org_id,
        sum(CASE WHEN is_key_user THEN 1 ELSE 0 END) AS key_users,
        sum(CASE WHEN is_key_user OR role = 'admin' THEN 1 ELSE 0 END) AS admins
    FROM users
    GROUP BY org_id
),
account_rows AS (
    SELECT org_id, arrow_cast(name, 'Utf8') AS name, arrow_cast(plan, 'Utf8') AS plan, is_paid, arrow_cast(csm, 'Utf8') AS csm, seats, renewal_date, signup_time
    FROM accounts
)

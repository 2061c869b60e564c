-- Shared by health_scores and health_history (`${part:health_people}`):
-- per account, its key users and its admins (key users count as admins).
people AS (
    SELECT
        org_id,
        sum(CASE WHEN is_key_user THEN 1 ELSE 0 END) AS key_users,
        sum(CASE WHEN is_key_user OR role = 'admin' THEN 1 ELSE 0 END) AS admins
    FROM users
    GROUP BY org_id
)

-- Shared by health_scores and health_history (`${part:health_grid_columns}`):
-- the columns of `grid`, from accounts a, the window w, usage u and people p.
a.org_id, a.name, a.plan, a.is_paid, a.csm, a.seats, a.renewal_date, w.w,
        coalesce(u.active_users, 0) AS active_users,
        coalesce(u.visits, 0) AS visits,
        coalesce(u.minutes, 0.0) AS minutes,
        coalesce(u.modules_used, 0) AS modules_used,
        coalesce(u.key_active, 0) AS key_active,
        coalesce(u.admins_active, 0) AS admins_active,
        coalesce(p.key_users, 0) AS key_users,
        coalesce(p.admins, 0) AS admins

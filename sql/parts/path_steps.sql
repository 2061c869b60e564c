-- Shared by paths and path_edges (`${part:path_steps}`): per unit (user or
-- account), the events of its path: from its anchor (its first start event,
-- or its first end event when only that is given, or its first event), within
-- the window of it, repeated events collapsed, cut at `steps`; `reach` says
-- whether a unit with a start event reached the end event within the window.

ev AS (
    SELECT CAST({{unit_col}} AS VARCHAR) AS unit, CAST(event_time AS BIGINT) AS t, CAST(event AS VARCHAR) AS event
    FROM events
    WHERE event_date >= {{from}} AND event_date <= {{to}} {{ignore_filter}}
),
anchors AS (
    SELECT unit, min(t) AS t0 FROM ev WHERE {{anchor_filter}} GROUP BY unit
),
ends AS (
    -- With both events: the first end event after the anchor, within the window.
    SELECT a.unit, min(e.t) AS t1
    FROM anchors a JOIN ev e ON e.unit = a.unit
    WHERE {{has_both}} AND e.event = {{end_event}}
      AND (e.t > a.t0 OR (e.t = a.t0 AND e.event > {{start_event}})) AND e.t <= a.t0 + {{window_us}}
    GROUP BY a.unit
),
reach AS (
    -- With only an end event, every path reaches it.
    SELECT a.unit, NOT {{has_both}} OR n.t1 IS NOT NULL AS reached FROM anchors a LEFT JOIN ends n ON n.unit = a.unit
),
windowed AS (
    -- Events ordered by (time, name); the anchor's own row is in.
    SELECT e.unit, e.t, e.event
    FROM ev e
    JOIN anchors a ON a.unit = e.unit
    LEFT JOIN ends n ON n.unit = e.unit
    WHERE {{window_filter}}
      AND (n.t1 IS NULL OR e.t < n.t1 OR (e.t = n.t1 AND e.event <= {{end_event}}))
),
marked AS (
    SELECT unit, t, event, lag(event) OVER (PARTITION BY unit ORDER BY t, event) AS prev FROM windowed
),
numbered AS (
    -- Counted from the anchor: forward after a start, backward before an end.
    SELECT unit, t, event, row_number() OVER (PARTITION BY unit ORDER BY t {{direction}}, event {{direction}}) AS rk
    FROM marked
    WHERE prev IS NULL OR prev <> event
),
stepped AS (
    SELECT unit, event, row_number() OVER (PARTITION BY unit ORDER BY t, event) AS step
    FROM numbered
    WHERE rk <= {{steps}}
)

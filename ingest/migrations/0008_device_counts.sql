-- Envelopes and readings per device counted from the packed rollups (0005, 0007), with raw rows read
-- only for the days touched since the last refresh (`rollup_pending()`), as reports read them. The
-- console's project and device pages counted every row of both tables on each view: seconds per page
-- at a project-year of 1-minute data. JIT is off in these functions: the planner's guesses for
-- rollup_pending() made PostgreSQL compile them with LLVM, about 1 s here for a query of 40 ms.

-- Envelopes per device (0 for a device with none), by the day of their device time.
CREATE FUNCTION envelope_counts(device_ids text[])
RETURNS TABLE (device_id text, envelopes bigint) LANGUAGE sql STABLE SET jit = off AS $$
    WITH pending AS MATERIALIZED (
        SELECT DISTINCT p.device_id, p.day FROM rollup_pending() p
        WHERE p.metric IS NULL AND p.device_id = ANY(device_ids)
    ),
    counted AS (
        SELECT ep.device_id, ep.n::bigint AS n FROM envelopes_packed ep
        WHERE ep.device_id = ANY(device_ids)
            AND NOT EXISTS (SELECT 1 FROM pending d WHERE d.device_id = ep.device_id AND d.day = ep.day)
        UNION ALL
        SELECT e.device_id, count(*) FROM pending d JOIN envelopes e ON e.device_id = d.device_id
            AND e.device_time >= d.day::timestamp AT TIME ZONE 'UTC'
            AND e.device_time < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY e.device_id
    )
    SELECT i.id, coalesce(sum(c.n), 0)::bigint FROM unnest(device_ids) AS i(id)
        LEFT JOIN counted c ON c.device_id = i.id
    GROUP BY i.id
$$;

-- Readings per device and metric (devices without readings left out), by the UTC day of their time.
-- A pending day is counted metric by metric, so that each count is a range of the (device, metric, ts)
-- index: every metric a device has is in one of its frames or touched since the refresh.
CREATE FUNCTION reading_counts(device_ids text[])
RETURNS TABLE (device_id text, metric smallint, readings bigint) LANGUAGE sql STABLE SET jit = off AS $$
    WITH touched AS MATERIALIZED (
        SELECT p.device_id, p.metric, p.day FROM rollup_pending() p
        WHERE p.metric IS NOT NULL AND p.device_id = ANY(device_ids)
    ),
    pending AS (
        SELECT DISTINCT t.device_id, t.day FROM touched t
    ),
    device_metrics AS (
        SELECT DISTINCT f.device_id, unnest(f.metrics) AS metric FROM readings_frames f
        WHERE f.device_id IN (SELECT p.device_id FROM pending p)
        UNION
        SELECT t.device_id, t.metric FROM touched t
    ),
    counted AS (
        SELECT f.device_id, m.metric, m.n::bigint AS n
        FROM readings_frames f, unnest(f.metrics, f.counts) AS m(metric, n)
        WHERE f.device_id = ANY(device_ids)
            AND NOT EXISTS (SELECT 1 FROM pending d WHERE d.device_id = f.device_id AND d.day = f.day)
        UNION ALL
        SELECT d.device_id, m.metric, (SELECT count(*) FROM readings r WHERE r.device_id = d.device_id
            AND r.metric = m.metric AND r.ts >= d.day::timestamp AT TIME ZONE 'UTC'
            AND r.ts < (d.day + 1)::timestamp AT TIME ZONE 'UTC')
        FROM pending d JOIN device_metrics m ON m.device_id = d.device_id
    )
    SELECT c.device_id, c.metric, sum(c.n)::bigint FROM counted c GROUP BY c.device_id, c.metric
        HAVING sum(c.n) > 0
$$;

-- Envelopes per month of the project clock (UTC + offset_minutes), by device time. A packed day inside
-- one such month counts whole; envelopes of days touched since the last refresh, and of the UTC days
-- in which a month of the project clock begins, are counted raw (through the device-time index).
CREATE FUNCTION envelope_months(project text, offset_minutes integer)
RETURNS TABLE (month date, envelopes bigint) LANGUAGE sql STABLE SET jit = off AS $$
    WITH ids AS (SELECT array_agg(d.id) AS ids FROM devices d WHERE d.project_id = project),
    pending AS MATERIALIZED (
        SELECT DISTINCT p.device_id, p.day FROM rollup_pending() p, ids
        WHERE p.metric IS NULL AND p.device_id = ANY(ids.ids)
    ),
    packed AS MATERIALIZED (
        SELECT ep.device_id, ep.day, ep.n,
               date_trunc('month', ep.day + make_interval(mins => offset_minutes)) AS first_month,
               date_trunc('month', ep.day + make_interval(days => 1, mins => offset_minutes, secs => -0.001))
                   AS last_month
        FROM envelopes_packed ep, ids WHERE ep.device_id = ANY(ids.ids)
            AND NOT EXISTS (SELECT 1 FROM pending d WHERE d.device_id = ep.device_id AND d.day = ep.day)
    ),
    raw_days AS (
        SELECT r.device_id, r.day FROM pending r
        UNION
        SELECT k.device_id, k.day FROM packed k WHERE k.first_month <> k.last_month
    )
    SELECT c.month::date, sum(c.n)::bigint FROM (
        SELECT k.first_month AS month, k.n FROM packed k WHERE k.first_month = k.last_month
        UNION ALL
        SELECT date_trunc('month', e.device_time AT TIME ZONE 'UTC' + make_interval(mins => offset_minutes)), 1
        FROM raw_days r JOIN envelopes e ON e.device_id = r.device_id
            AND e.device_time >= r.day::timestamp AT TIME ZONE 'UTC'
            AND e.device_time < (r.day + 1)::timestamp AT TIME ZONE 'UTC'
    ) c GROUP BY c.month
$$;

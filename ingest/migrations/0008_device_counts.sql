-- Envelopes and readings per device counted from the packed rollups (0005, 0007), with raw rows read
-- only for the days touched since the last refresh (`rollup_pending()`), as reports read them. The
-- console's project and device pages counted every row of both tables on each view: seconds per page
-- at a project-year of 1-minute data.

-- Envelopes per device (0 for a device with none), by the day of their device time.
CREATE FUNCTION envelope_counts(device_ids text[])
RETURNS TABLE (device_id text, envelopes bigint) LANGUAGE sql STABLE AS $$
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
CREATE FUNCTION reading_counts(device_ids text[])
RETURNS TABLE (device_id text, metric smallint, readings bigint) LANGUAGE sql STABLE AS $$
    WITH pending AS MATERIALIZED (
        SELECT DISTINCT p.device_id, p.day FROM rollup_pending() p
        WHERE p.metric IS NOT NULL AND p.device_id = ANY(device_ids)
    ),
    counted AS (
        SELECT f.device_id, m.metric, m.n::bigint AS n
        FROM readings_frames f, unnest(f.metrics, f.counts) AS m(metric, n)
        WHERE f.device_id = ANY(device_ids)
            AND NOT EXISTS (SELECT 1 FROM pending d WHERE d.device_id = f.device_id AND d.day = f.day)
        UNION ALL
        SELECT r.device_id, r.metric, count(*) FROM pending d JOIN readings r ON r.device_id = d.device_id
            AND r.ts >= d.day::timestamp AT TIME ZONE 'UTC' AND r.ts < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY r.device_id, r.metric
    )
    SELECT c.device_id, c.metric, sum(c.n)::bigint FROM counted c GROUP BY c.device_id, c.metric
$$;

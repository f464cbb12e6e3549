-- Days are packed once they have ended, not re-packed on every refresh while they fill up.
--
-- refresh_rollups() (0007) re-packs every touched day whole. Kept current during the day (the ingest
-- workers refresh every 15 minutes, ingest/rollups.py), it re-packed the day so far of every device on
-- each run: ~5 s per 100 devices of 1-minute data, whatever the interval, growing with the fleet. Now a
-- touched day from today (UTC) on is deferred instead: recorded in rollup_deferred, which
-- rollup_pending() lists like a day touched past the watermark, so readers read it raw, and packed by
-- the first refresh after it has ended (late envelopes for a closed day are packed as before). Readers
-- read at most today's rows raw for it; a report cannot cover a period that has not ended anyway.
--
-- Both functions are restated whole (a migration that replaces a function must); what changed is the
-- UNION with rollup_deferred in rollup_pending(), and in refresh_rollups() its `today` argument (for
-- tests and backfills) and the three statements after `pending_days`.

CREATE TABLE rollup_deferred (
    device_id text COLLATE "C" NOT NULL,
    metric    smallint,  -- as rollup_pending(): NULL for the envelopes' day (by device time)
    day       date NOT NULL
);

-- The (device, metric, day) of readings and the (device, day) of envelopes touched by envelopes past
-- the watermark that are visible to the current snapshot, optionally only those below `horizon`.
CREATE OR REPLACE FUNCTION rollup_pending(horizon xid8 DEFAULT NULL)
RETURNS TABLE (device_id text, metric smallint, day date) LANGUAGE sql STABLE AS $$
    WITH mark AS (SELECT txid, envelope_id FROM rollup_watermark),
    fresh AS (
        SELECT e.id, e.device_id, e.device_time FROM envelopes e, mark
        WHERE (e.txid, e.id) > (mark.txid, mark.envelope_id) AND (horizon IS NULL OR e.txid < horizon)
    ),
    bounds AS (SELECT min(id) AS lo, max(id) AS hi FROM fresh)
    SELECT DISTINCT r.device_id, r.metric, (r.ts AT TIME ZONE 'UTC')::date
    FROM readings r, bounds WHERE r.envelope_id BETWEEN bounds.lo AND bounds.hi
        AND r.envelope_id IN (SELECT id FROM fresh)
    UNION
    SELECT DISTINCT f.device_id, NULL::smallint, (f.device_time AT TIME ZONE 'UTC')::date FROM fresh f
    UNION
    SELECT d.device_id, d.metric, d.day FROM rollup_deferred d
$$;

-- Re-pack the days before `today` (default: the UTC date) touched since the watermark, defer the later
-- ones, move the watermark; returns the device-days of readings packed.
DROP FUNCTION refresh_rollups();
CREATE FUNCTION refresh_rollups(today date DEFAULT NULL) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    mark rollup_watermark%ROWTYPE;
    newest record;
    packed integer;
BEGIN
    SELECT * INTO mark FROM rollup_watermark FOR UPDATE;  -- one refresher at a time
    today := coalesce(today, (now() AT TIME ZONE 'UTC')::date);
    CREATE TEMP TABLE pending_days ON COMMIT DROP AS SELECT * FROM rollup_pending(horizon);
    DELETE FROM rollup_deferred;
    INSERT INTO rollup_deferred SELECT * FROM pending_days WHERE day >= today;
    DELETE FROM pending_days WHERE day >= today;

    DELETE FROM readings_frames f USING pending_days d
        WHERE d.metric IS NOT NULL AND f.device_id = d.device_id AND f.day = d.day;
    INSERT INTO readings_frames (device_id, day, n_keys, ts_ms, envelope_ids, metrics, counts, vals, key_index,
                                 quality)
    WITH frames AS (SELECT DISTINCT device_id, day FROM pending_days WHERE metric IS NOT NULL),
    cells AS (
        SELECT r.device_id, f.day, r.metric, r.ts, r.envelope_id, r.value, r.quality,
               (dense_rank() OVER (PARTITION BY r.device_id, f.day ORDER BY r.ts, r.envelope_id) - 1)::int4 AS key
        FROM frames f JOIN readings r ON r.device_id = f.device_id
            AND r.ts >= f.day::timestamp AT TIME ZONE 'UTC' AND r.ts < (f.day + 1)::timestamp AT TIME ZONE 'UTC'
    ),
    keys AS (
        SELECT device_id, day, count(*)::int4 AS n_keys,
               string_agg(int4send(((extract(epoch FROM ts) * 1000)::int8
                                    - (day - DATE '1970-01-01') * 86400000::int8)::int4), '' ORDER BY key) AS ts_ms,
               string_agg(int8send(envelope_id), '' ORDER BY key) AS envelope_ids
        FROM (SELECT DISTINCT device_id, day, key, ts, envelope_id FROM cells) k
        GROUP BY device_id, day
    ),
    series AS (
        SELECT device_id, day, metric, count(*)::int4 AS n, count(DISTINCT key)::int4 AS keyed, max(key) AS last_key,
               bit_or(quality) AS any_quality,
               string_agg(CASE WHEN metric IN (1, 2) THEN int8send(value::int8) ELSE float8send(value::float8) END,
                          '' ORDER BY key) AS vals,
               string_agg(int4send(key), '' ORDER BY key) AS key_index,
               string_agg(int2send(quality::int2), '' ORDER BY key) AS quality
        FROM cells GROUP BY device_id, day, metric
    ),
    per_frame AS (
        SELECT device_id, day, array_agg(metric ORDER BY metric) AS metrics, array_agg(n ORDER BY metric) AS counts,
               string_agg(vals, '' ORDER BY metric) AS vals,
               -- dense: every metric has exactly one reading at each key
               CASE WHEN bool_and(n = keyed) AND min(keyed) = max(last_key) + 1 THEN NULL
                    ELSE string_agg(key_index, '' ORDER BY metric) END AS key_index,
               CASE WHEN bit_or(any_quality) = 0 THEN NULL ELSE string_agg(quality, '' ORDER BY metric) END AS quality
        FROM series GROUP BY device_id, day
    )
    SELECT k.device_id, k.day, k.n_keys, k.ts_ms, k.envelope_ids, p.metrics, p.counts, p.vals, p.key_index, p.quality
    FROM keys k JOIN per_frame p USING (device_id, day);
    GET DIAGNOSTICS packed = ROW_COUNT;

    DELETE FROM envelopes_packed p USING pending_days d
        WHERE d.metric IS NULL AND p.device_id = d.device_id AND p.day = d.day;
    INSERT INTO envelopes_packed (device_id, day, n, ids, device_time_ms, received_ms, hashes)
    SELECT e.device_id, d.day, count(*),
           string_agg(int8send(e.id), '' ORDER BY e.device_time, e.id),
           string_agg(int8send((extract(epoch FROM e.device_time) * 1000)::int8), ''
                      ORDER BY e.device_time, e.id),
           string_agg(int8send((extract(epoch FROM e.received_at) * 1000)::int8), ''
                      ORDER BY e.device_time, e.id),
           string_agg(e.hash, '' ORDER BY e.device_time, e.id)
    FROM pending_days d JOIN envelopes e ON e.device_id = d.device_id
        AND e.device_time >= d.day::timestamp AT TIME ZONE 'UTC'
        AND e.device_time < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
    WHERE d.metric IS NULL
    GROUP BY e.device_id, d.day;

    SELECT e.txid, e.id INTO newest FROM envelopes e
        WHERE (e.txid, e.id) > (mark.txid, mark.envelope_id) AND e.txid < horizon
        ORDER BY e.txid DESC, e.id DESC LIMIT 1;
    IF FOUND THEN
        UPDATE rollup_watermark SET (txid, envelope_id, refreshed_at) = (newest.txid, newest.id, now());
    END IF;
    RETURN packed;
END $$;

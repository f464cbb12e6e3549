-- Packed readings as one frame per (device, UTC day) instead of one row per (device, metric, day).
--
-- A gateway reads all of a meter's metrics at one instant and sends them in one envelope, so the rows
-- of 0005's readings_packed repeated the same timestamps and envelope ids once per metric: 28 bytes per
-- reading, of which 20 were those repeats and an all-zero quality. A report reads every packed byte of
-- its window, and moving those bytes out of PostgreSQL was the largest part of its time (P5).
--
-- A frame holds the distinct (ts, envelope id) pairs of the device-day once -- its keys, in (ts,
-- envelope id) order -- and each metric's readings as cells referring to them: 12 bytes per key plus
-- 8 per reading in the usual case, about 11 bytes per reading instead of 28. Sparse frames (metrics read
-- at different instants) stay exact: each cell then carries its key's index. Decoding is
-- mrv_engine.columns.Frame; tests/mrv_engine/test_db.py holds the rollup path equal to a raw scan.
--
-- The watermark goes back to the start, so the next refresh_rollups() packs every day again (a
-- one-off job as long as a full refresh).

DROP FUNCTION refresh_rollups();
DROP TABLE readings_packed;

CREATE TABLE readings_frames (
    device_id    text COLLATE "C" NOT NULL,
    day          date NOT NULL,
    n_keys       integer NOT NULL,
    ts_ms        bytea NOT NULL,       -- int4 per key: milliseconds since the day's start (UTC)
    envelope_ids bytea NOT NULL,       -- int8 per key
    metrics      smallint[] NOT NULL,  -- the metrics with readings, ascending
    counts       integer[] NOT NULL,   -- readings per metric, in `metrics` order
    -- per metric in `metrics` order, its readings in key order: int8 Wh for the cumulative registers
    -- (metrics 1 and 2, exact to the Wh), float8 otherwise
    vals         bytea NOT NULL,
    key_index    bytea,                -- int4 per reading: its key; NULL when each metric has one reading per key
    quality      bytea,                -- int2 per reading; NULL when every reading's quality is 0
    PRIMARY KEY (device_id, day)
);

UPDATE rollup_watermark SET (txid, envelope_id, refreshed_at) = ('0', 0, now());

-- Re-pack the days touched since the watermark and move it; returns the device-days of readings packed.
CREATE FUNCTION refresh_rollups() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    mark rollup_watermark%ROWTYPE;
    newest record;
    packed integer;
BEGIN
    SELECT * INTO mark FROM rollup_watermark FOR UPDATE;  -- one refresher at a time
    CREATE TEMP TABLE pending_days ON COMMIT DROP AS SELECT * FROM rollup_pending(horizon);

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

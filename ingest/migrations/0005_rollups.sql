-- Rollups for monitoring reports (mrv_engine.db): each (device, metric, UTC day) of readings and each
-- (device, UTC day of device time) of envelopes packed into one row of big-endian arrays, so that a
-- report reads a device-year as ~365 rows per metric instead of ~525,000 and decodes them with numpy.
-- Packing keeps every reading: a report built from the packed days sees exactly what a scan of the raw
-- tables sees (tests/mrv_engine/test_db.py holds it to that, to the Wh).
--
-- Both storage modes use these tables: a TimescaleDB continuous aggregate cannot express them
-- (ordered aggregates such as string_agg(... ORDER BY ts) are not allowed in continuous aggregates),
-- and TimescaleDB before 2.18 refuses the transition-table trigger a write-side rollup would need.
-- Instead refresh_rollups() is run from the report side: it re-packs the days touched by envelopes
-- committed since its watermark, an (envelopes.txid, envelopes.id) pair taken below the snapshot's
-- xmin, so that an envelope committed late by a slow transaction is never skipped (see
-- 0002_envelopes.sql). Readers treat days touched by envelopes past the watermark as not packed.
--
-- Hour-level aggregates (not built yet): where TimescaleDB is present, the
-- per-hour register summary a report would read could be a continuous aggregate. UNTESTED -- TimescaleDB
-- cannot be installed on the build machine, so nothing below runs in either mode. first()/last() by time
-- are TimescaleDB aggregates allowed in continuous aggregates (finalized form, 2.7+); window functions
-- are not, so per-step figures (largest step, equal neighbours) would still come from the packed days:
--   CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
--   SELECT device_id, metric, time_bucket(INTERVAL '1 hour', ts) AS hour, count(*) AS n,
--          bit_or(quality) AS quality, min(ts) AS first_ts, first(value, ts) AS first_value,
--          max(ts) AS last_ts, last(value, ts) AS last_value
--   FROM readings WHERE metric IN (1, 2)
--   GROUP BY device_id, metric, time_bucket(INTERVAL '1 hour', ts) WITH NO DATA;
--   SELECT add_continuous_aggregate_policy('readings_hourly', start_offset => INTERVAL '7 days',
--          end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
-- A continuous aggregate's refresh window is by time, not by commit: late envelopes (an outbox draining
-- days later) need the same watermark as the packed tables before a report could trust it.

CREATE TABLE rollup_watermark (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    txid         xid8 NOT NULL,
    envelope_id  bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO rollup_watermark (txid, envelope_id) VALUES ('0', 0);

-- ts_ms: int8 milliseconds; vals: int8 Wh for the cumulative registers (metrics 1 and 2, exact to
-- the Wh), float8 otherwise; quality: int4; envelope_ids: int8. All in ts order, ties by envelope id.
CREATE TABLE readings_packed (
    device_id    text COLLATE "C" NOT NULL,
    metric       smallint NOT NULL,
    day          date NOT NULL,
    n            integer NOT NULL,
    ts_ms        bytea NOT NULL,
    vals         bytea NOT NULL,
    quality      bytea NOT NULL,
    envelope_ids bytea NOT NULL,
    PRIMARY KEY (device_id, metric, day)
);

-- ids and times int8 (ms), hashes 32 bytes each; in (device_time, id) order.
CREATE TABLE envelopes_packed (
    device_id      text COLLATE "C" NOT NULL,
    day            date NOT NULL,
    n              integer NOT NULL,
    ids            bytea NOT NULL,
    device_time_ms bytea NOT NULL,
    received_ms    bytea NOT NULL,
    hashes         bytea NOT NULL,
    PRIMARY KEY (device_id, day)
);

-- Finding the readings of new envelopes: envelope ids grow with time, so a BRIN index stays a few
-- pages and costs the writer almost nothing.
CREATE INDEX readings_envelope_brin ON readings USING brin (envelope_id);
-- Arrivals and envelope days by device time.
CREATE INDEX envelopes_device_time_idx ON envelopes (device_id, device_time);

-- The (device, metric, day) of readings and the (device, day) of envelopes touched by envelopes past
-- the watermark that are visible to the current snapshot, optionally only those below `horizon`.
CREATE FUNCTION rollup_pending(horizon xid8 DEFAULT NULL)
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
$$;

-- Re-pack the days touched since the watermark and move it; returns the number of days packed.
CREATE FUNCTION refresh_rollups() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    mark rollup_watermark%ROWTYPE;
    newest record;
    packed integer;
BEGIN
    SELECT * INTO mark FROM rollup_watermark FOR UPDATE;  -- one refresher at a time
    CREATE TEMP TABLE pending_days ON COMMIT DROP AS SELECT * FROM rollup_pending(horizon);

    DELETE FROM readings_packed p USING pending_days d
        WHERE p.device_id = d.device_id AND p.metric = d.metric AND p.day = d.day;
    INSERT INTO readings_packed (device_id, metric, day, n, ts_ms, vals, quality, envelope_ids)
    SELECT r.device_id, r.metric, d.day, count(*),
           string_agg(int8send((extract(epoch FROM r.ts) * 1000)::int8), '' ORDER BY r.ts, r.envelope_id),
           string_agg(CASE WHEN r.metric IN (1, 2) THEN int8send(r.value::int8)
                           ELSE float8send(r.value::float8) END, '' ORDER BY r.ts, r.envelope_id),
           string_agg(int4send(r.quality), '' ORDER BY r.ts, r.envelope_id),
           string_agg(int8send(r.envelope_id), '' ORDER BY r.ts, r.envelope_id)
    FROM pending_days d JOIN readings r ON r.device_id = d.device_id AND r.metric = d.metric
        AND r.ts >= d.day::timestamp AT TIME ZONE 'UTC' AND r.ts < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
    WHERE d.metric IS NOT NULL
    GROUP BY r.device_id, r.metric, d.day;
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

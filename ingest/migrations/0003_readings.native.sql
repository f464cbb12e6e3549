-- Readings, the time series derived from envelopes; native mode (no TimescaleDB): monthly RANGE
-- partitions on ts (UTC months, readings_YYYY_MM) created ahead of need by the ingest service through
-- ensure_readings_partition(), and a default partition so that no reading is ever refused for lack
-- of one (the function moves any rows it caught into the new month's partition).
--
-- No foreign key to envelopes: the writer inserts readings only for the envelopes its INSERT returned,
-- in the same transaction; a per-row check would cost more than the insert itself.
-- value is numeric: cumulative registers are integers up to 2^63-1 and stay exact to the last Wh;
-- floats keep their shortest decimal form, which converts back to the same double.

CREATE TABLE readings (
    device_id   text COLLATE "C" NOT NULL,
    metric      smallint NOT NULL,  -- protocol.metrics.Metric
    ts          timestamptz NOT NULL,
    value       numeric NOT NULL,
    quality     integer NOT NULL,   -- protocol.metrics.Quality bits
    envelope_id bigint NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
CREATE INDEX readings_device_metric_ts_idx ON readings (device_id, metric, ts);

CREATE FUNCTION ensure_readings_partition(month date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    lo timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (first_day + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'readings_' || to_char(first_day, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('ensure_readings_partition'));
    -- Another session may have created it while we waited: look in the catalog with this statement's
    -- fresh snapshot (to_regclass's cache would not know yet).
    PERFORM 1 FROM pg_class WHERE relname = name
        AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'readings'::regclass);
    IF FOUND THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE readings)', name);
    EXECUTE format('WITH caught AS (DELETE FROM readings_default WHERE ts >= %L AND ts < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM caught', lo, hi, name);
    EXECUTE format('ALTER TABLE readings ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END $$;

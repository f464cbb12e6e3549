-- Readings, the time series derived from envelopes; TimescaleDB 2.x mode: a hypertable on ts with
-- 7-day chunks, compressed after 30 days (segments per device and metric, ordered by time). There is
-- no retention policy: readings are evidence and stay. The columns are those of the native variant,
-- 0003_readings.native.sql, which explains them.

CREATE TABLE readings (
    device_id   text COLLATE "C" NOT NULL,
    metric      smallint NOT NULL,  -- protocol.metrics.Metric
    ts          timestamptz NOT NULL,
    value       numeric NOT NULL,
    quality     integer NOT NULL,   -- protocol.metrics.Quality bits
    envelope_id bigint NOT NULL
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '7 days');
CREATE INDEX readings_device_metric_ts_idx ON readings (device_id, metric, ts);
ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'ts'
);
SELECT add_compression_policy('readings', INTERVAL '30 days');

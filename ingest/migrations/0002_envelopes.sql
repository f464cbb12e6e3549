-- Envelopes verbatim, unique on (device, seq); rejected input; the per-device hash chain.
--
-- envelopes stays a plain table in both storage modes: a TimescaleDB hypertable requires every
-- unique index to contain the time column, which would turn UNIQUE (device_id, seq) into
-- UNIQUE (device_id, seq, arrived) and let a replay with a new arrival time in. The raw bytes are
-- small (a few hundred bytes per interval and meter) next to the readings derived from them.
--
-- Commit order for the sequencer: `txid` is the writing transaction's id. A reader that takes rows
-- with txid < pg_snapshot_xmin(pg_current_snapshot()), ordered by (txid, id), never sees a row later
-- that sorts before one it has already taken; `stored_at` is the wall clock just before commit.

CREATE TABLE envelopes (
    id          bigserial PRIMARY KEY,
    device_id   text COLLATE "C" NOT NULL REFERENCES devices (id),
    seq         bigint NOT NULL CHECK (seq >= 0),
    hash        bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    prev        bytea NOT NULL CHECK (length(prev) = 32),
    kid         bytea NOT NULL REFERENCES device_keys (kid),
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    flags       integer NOT NULL DEFAULT 0,  -- ingest.decide.EnvelopeFlag bits
    raw         bytea NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX envelopes_txid_idx ON envelopes (txid, id);

-- Anything refused, with a stable reason code (protocol.Reason). `raw` keeps at most the envelope
-- size limit; `raw_size` the size received.
CREATE TABLE quarantine (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    device_id   text COLLATE "C",  -- as claimed by the topic or payload; not necessarily enrolled
    seq         bigint,
    raw_size    integer NOT NULL,
    raw         bytea NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_received_idx ON quarantine (received_at);
CREATE INDEX quarantine_device_idx ON quarantine (device_id, seq);

-- The chain tip per device, locked (FOR UPDATE) by the writer so that workers sharing a subscription
-- decide each device's envelopes one batch at a time. A row exists for every device.
CREATE TABLE device_chain (
    device_id  text COLLATE "C" PRIMARY KEY REFERENCES devices (id),
    last_seq   bigint,
    last_hash  bytea,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((last_seq IS NULL) = (last_hash IS NULL))
);

CREATE FUNCTION create_device_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_chain (device_id) VALUES (NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER devices_chain AFTER INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION create_device_chain();

CREATE TABLE chain_events (
    id          bigserial PRIMARY KEY,
    device_id   text COLLATE "C" NOT NULL REFERENCES devices (id),
    kind        text NOT NULL CHECK (kind IN ('gap', 'chain_break', 'late_fill')),
    seq_from    bigint NOT NULL,
    seq_to      bigint NOT NULL CHECK (seq_to >= seq_from),
    detail      text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chain_events_device_idx ON chain_events (device_id, seq_from);

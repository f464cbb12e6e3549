-- The Merkle log (anchoring.store): leaves in commit order, hash tiles, signed checkpoints and
-- their anchors. Append-only by construction: the sequencer only inserts (and extends the partial
-- right-edge tiles), and every row is keyed so that a second writer's insert fails instead of
-- forking the log.

-- Leaf `leaf_index` is SHA-256(0x00 || envelopes.raw) of envelope `envelope_id`; each envelope
-- is logged at most once.
CREATE TABLE log_leaves (
    leaf_index  bigint PRIMARY KEY CHECK (leaf_index >= 0),
    envelope_id bigint NOT NULL UNIQUE REFERENCES envelopes (id),
    leaf_hash   bytea NOT NULL CHECK (length(leaf_hash) = 32)
);

-- Hash tiles, as in C2SP tlog-tiles but 16 hashes wide (anchoring.store.TILE_HEIGHT = 4), so
-- that a full tile (512 bytes) stays inline in its row: tile (level, tile_index) holds the hashes
-- of the perfect-subtree nodes tile_index * 16, ... on tree level 4 * level, left to right (node i
-- on tree level l is the root of leaves [i * 2^l, (i + 1) * 2^l); tiles of level 0 hold the leaf
-- hashes). Every other node is hashed from the one tile that holds its subtree's bottom row, so
-- an inclusion proof in a 10 M-leaf log reads 10 rows instead of 30 node rows. The right-edge
-- tile of each level is partial: the sequencer appends to it, and that UPDATE only ever extends
-- it (see anchoring.store.append_nodes).
CREATE TABLE log_tiles (
    level      smallint NOT NULL CHECK (level BETWEEN 0 AND 15),
    tile_index bigint NOT NULL CHECK (tile_index >= 0),
    hashes     bytea NOT NULL CHECK (length(hashes) BETWEEN 32 AND 512 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, tile_index)
);

-- C2SP signed checkpoints, one per tree size; `note` is the signed note exactly as signed.
CREATE TABLE checkpoints (
    size       bigint PRIMARY KEY CHECK (size >= 0),
    root       bytea NOT NULL CHECK (length(root) = 32),
    note       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The states of an anchor and the only moves between them: signed -> anchored -> confirmed.
CREATE TABLE anchor_states (
    status text PRIMARY KEY,
    next   text UNIQUE REFERENCES anchor_states (status)
);
INSERT INTO anchor_states (status, next) VALUES ('confirmed', NULL), ('anchored', 'confirmed'),
    ('signed', 'anchored');

-- A checkpoint chosen for a ledger: `receipt` (anchoring.ledger.AnchorReceipt as JSON) once the
-- ledger recorded it.
CREATE TABLE anchors (
    checkpoint_size bigint NOT NULL REFERENCES checkpoints (size),
    ledger          text NOT NULL,
    status          text NOT NULL DEFAULT 'signed' REFERENCES anchor_states (status),
    receipt         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    anchored_at     timestamptz,
    confirmed_at    timestamptz,
    PRIMARY KEY (checkpoint_size, ledger),
    CHECK ((status = 'signed') = (receipt IS NULL))
);
CREATE INDEX anchors_status_idx ON anchors (ledger, status);

CREATE FUNCTION check_anchor_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
            SELECT 1 FROM anchor_states WHERE status = OLD.status AND next = NEW.status) THEN
        RAISE EXCEPTION 'anchor of checkpoint % on %: no transition from % to %',
            OLD.checkpoint_size, OLD.ledger, OLD.status, NEW.status;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER anchors_transition BEFORE UPDATE ON anchors
    FOR EACH ROW EXECUTE FUNCTION check_anchor_transition();

-- Projects, devices and their keys; the broker accounts derived from them.
-- A key is valid for envelopes whose device time AND arrival lie in [valid_from, valid_until) and
-- only while its status is 'active'; rotation closes the old key's window, revocation is final.
-- Ids are ASCII (protocol.ids): COLLATE "C" compares them bytewise, which keeps the many indexes on
-- device_id (envelopes, readings) much cheaper than a locale's collation would.

CREATE TABLE projects (
    id          text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id          text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    project_id  text COLLATE "C" NOT NULL REFERENCES projects (id),
    role        text NOT NULL CHECK (role IN ('main', 'check')),
    kind        text NOT NULL CHECK (kind IN ('pv', 'wind', 'hydro', 'other')),
    capacity_w  bigint NOT NULL CHECK (capacity_w > 0),
    enrolled_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_project_idx ON devices (project_id);

CREATE TABLE device_keys (
    kid         bytea PRIMARY KEY CHECK (length(kid) = 16),
    device_id   text COLLATE "C" NOT NULL REFERENCES devices (id),
    public_key  bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    valid_from  timestamptz NOT NULL,
    valid_until timestamptz CHECK (valid_until IS NULL OR valid_until >= valid_from),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at  timestamptz,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX device_keys_device_idx ON device_keys (device_id);

-- Broker credentials (mosquitto PBKDF2-SHA512 hashes); the password and ACL files are rendered from
-- this table. A device account is enabled while the device has an active key.
CREATE TABLE broker_accounts (
    username      text PRIMARY KEY,
    password_hash text NOT NULL CHECK (password_hash LIKE '$7$%'),
    role          text NOT NULL CHECK (role IN ('device', 'ingest')),
    device_id     text COLLATE "C" UNIQUE REFERENCES devices (id),
    CHECK ((role = 'device') = (device_id IS NOT NULL))
);

-- Ingest workers cache the registry and reload it when this number moves (every change bumps it).
CREATE TABLE registry_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO registry_version (version) VALUES (1);

CREATE FUNCTION bump_registry_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_registry_version AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_version();
CREATE TRIGGER device_keys_registry_version AFTER INSERT OR UPDATE OR DELETE ON device_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_version();

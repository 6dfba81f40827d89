-- What an exact round trip to the member's bytes needs besides the readable
-- JSON: how the key was encoded, how the value was encoded, and for Compact
-- values the type name and the schema id (the schema itself is kept below).
-- Nullable: rows written by the reference framework have none of them.
ALTER TABLE domain_events
    ADD COLUMN IF NOT EXISTS key_format   TEXT,
    ADD COLUMN IF NOT EXISTS value_format TEXT,
    ADD COLUMN IF NOT EXISTS type_name    TEXT,
    ADD COLUMN IF NOT EXISTS schema_id    BIGINT;

ALTER TABLE domain_views
    ADD COLUMN IF NOT EXISTS key_format   TEXT,
    ADD COLUMN IF NOT EXISTS value_format TEXT,
    ADD COLUMN IF NOT EXISTS type_name    TEXT,
    ADD COLUMN IF NOT EXISTS schema_id    BIGINT;

-- A table created by the reference's own migrations declares the event columns
-- NOT NULL; the sidecar stores events whose records lack some of them.
ALTER TABLE domain_events
    ALTER COLUMN aggregate_id DROP NOT NULL,
    ALTER COLUMN sequence DROP NOT NULL,
    ALTER COLUMN event_type DROP NOT NULL,
    ALTER COLUMN timestamp_millis DROP NOT NULL;

-- Compact schemas, by id (the Rabin fingerprint of type name and fields), so
-- that values loaded after a restart come back with the schemas they use.
-- fields: [{"name": "amount", "kind": 13}, ...] in the schema's order.
CREATE TABLE IF NOT EXISTS hz_sidecar_schemas (
    schema_id  BIGINT      PRIMARY KEY,
    type_name  TEXT        NOT NULL,
    fields     JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Poison entries (DESIGN.md, "Poison entries"): an entry of a Store call whose
-- bytes the sidecar cannot decode is kept here exactly as the member sent it,
-- with the error, instead of stalling Hazelcast's write-behind queue.
-- `hz-sidecar dlq list | replay | purge` manages the rows.
CREATE TABLE IF NOT EXISTS hz_sidecar_dead_letters (
    id                      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    map_name                TEXT        NOT NULL,
    key_data                BYTEA       NOT NULL,
    value_data              BYTEA       NOT NULL,
    error                   TEXT        NOT NULL,
    dead_lettered_at_millis BIGINT      NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_hz_sidecar_dead_letters_map
    ON hz_sidecar_dead_letters (map_name, id);

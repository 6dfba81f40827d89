-- The exact Data bytes of a key whose text alone cannot rebuild them (a
-- Java-serialized key, read into a readable text such as the reference's
-- `seq:{sequence}|key:{partitionKey}`). NULL for every other key, and in rows
-- written by the reference framework itself.
ALTER TABLE domain_events ADD COLUMN IF NOT EXISTS key_data BYTEA;
ALTER TABLE domain_views ADD COLUMN IF NOT EXISTS key_data BYTEA;

-- Stored rows that a load met and could not turn back into the member's
-- bytes (a broken document, an unknown key format): skipped by every load,
-- recorded once per map and key so that `hz-sidecar unreadable list` shows them.
CREATE TABLE IF NOT EXISTS hz_sidecar_unreadable_rows (
    map_name       TEXT   NOT NULL,
    key_text       TEXT   NOT NULL,
    key_format     TEXT   NOT NULL,
    error          TEXT   NOT NULL,
    seen_at_millis BIGINT NOT NULL,
    PRIMARY KEY (map_name, key_text)
);

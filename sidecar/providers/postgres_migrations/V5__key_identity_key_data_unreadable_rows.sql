-- A key is identified by its format and its text together: Integer 1, Long 1 and
-- String "1" are three keys (DESIGN.md). The primary keys become (map, key text,
-- key format), with '' as the format of the keys in the reference framework's own
-- form: a String key of a view map, a PartitionedSequenceKey<String> of an event
-- map ('seq:{sequence}|key:{partitionKey}'). Rows the framework wrote (no format)
-- and the sidecar's rows of those keys are therefore the same rows.
UPDATE domain_views SET key_format = '' WHERE key_format IS NULL OR key_format = 'string';
UPDATE domain_events SET key_format = '' WHERE key_format IS NULL;

ALTER TABLE domain_events
    ALTER COLUMN key_format SET DEFAULT '',
    ALTER COLUMN key_format SET NOT NULL;
ALTER TABLE domain_views
    ALTER COLUMN key_format SET DEFAULT '',
    ALTER COLUMN key_format SET NOT NULL;

-- The primary key's name is whatever created the table (ours or the reference's
-- Flyway migration): look it up rather than assume it.
DO $$
DECLARE
    table_name text;
    constraint_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['domain_events', 'domain_views'] LOOP
        SELECT conname INTO constraint_name FROM pg_constraint
            WHERE conrelid = table_name::regclass AND contype = 'p';
        IF constraint_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', table_name, constraint_name);
        END IF;
    END LOOP;
END $$;
ALTER TABLE domain_events ADD PRIMARY KEY (map_name, map_key, key_format);
ALTER TABLE domain_views ADD PRIMARY KEY (view_name, view_key, key_format);

-- The exact Data bytes of a key whose text alone cannot rebuild them (a
-- Java-serialized key of another class than PartitionedSequenceKey<String>).
-- NULL for every other key.
ALTER TABLE domain_events ADD COLUMN IF NOT EXISTS key_data BYTEA;
ALTER TABLE domain_views ADD COLUMN IF NOT EXISTS key_data BYTEA;

-- The exact JSON text of a value where JSONB would not keep it: a
-- HazelcastJsonValue (JSONB reorders keys and respaces), a document holding NUL
-- (JSONB refuses it; the JSONB column then holds a readable copy). NULL otherwise.
ALTER TABLE domain_events ADD COLUMN IF NOT EXISTS exact_data TEXT;
ALTER TABLE domain_views ADD COLUMN IF NOT EXISTS exact_data TEXT;

-- Stored rows that a load met and could not turn back into the member's
-- bytes (a broken document, an unknown key format): skipped by every load,
-- recorded once per map and key so that `hz-sidecar unreadable list` shows them.
CREATE TABLE IF NOT EXISTS hz_sidecar_unreadable_rows (
    map_name       TEXT   NOT NULL,
    key_text       TEXT   NOT NULL,
    key_format     TEXT   NOT NULL,
    error          TEXT   NOT NULL,
    seen_at_millis BIGINT NOT NULL,
    PRIMARY KEY (map_name, key_text, key_format)
);

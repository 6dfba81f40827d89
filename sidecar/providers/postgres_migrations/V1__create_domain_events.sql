-- The reference's event store table (framework-postgres V1), kept column for
-- column so that existing queries keep working. The event columns are nullable
-- here because a record need not carry every one of them; IF NOT EXISTS lets a
-- database created by the reference's Flyway migrations be adopted as it is.
CREATE TABLE IF NOT EXISTS domain_events (
    map_key          TEXT        NOT NULL,
    aggregate_id     TEXT,
    sequence         BIGINT,
    event_type       TEXT,
    event_data       JSONB       NOT NULL,
    timestamp_millis BIGINT,
    correlation_id   TEXT,
    map_name         TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (map_name, map_key)
);

-- An aggregate's history in order, events of a type, events in a time range.
CREATE INDEX IF NOT EXISTS idx_domain_events_aggregate ON domain_events (aggregate_id, sequence);
CREATE INDEX IF NOT EXISTS idx_domain_events_type ON domain_events (event_type);
CREATE INDEX IF NOT EXISTS idx_domain_events_timestamp ON domain_events (timestamp_millis);

-- The reference's materialized view table (framework-postgres V2).
CREATE TABLE IF NOT EXISTS domain_views (
    view_name           TEXT        NOT NULL,
    view_key            TEXT        NOT NULL,
    view_data           JSONB       NOT NULL,
    last_updated_millis BIGINT      NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (view_name, view_key)
);

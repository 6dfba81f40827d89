-- The reference's tables in MySQL's dialect (MySQL 8, MariaDB 10.6+), with the
-- round-trip columns, the Compact schemas, dead letters and unreadable rows:
-- what the PostgreSQL migrations V1-V6 build, in one step.
--
-- MySQL commits every DDL statement on its own (no transactional DDL), so a
-- migration interrupted halfway is applied again from its start: every
-- statement here must be one that can run twice (IF NOT EXISTS).
--
-- Text that identifies something (map names, key formats) is compared byte for
-- byte and without PAD SPACE: "a" and "A", "x" and "x " are different. The
-- collation written here is MariaDB's; the provider applies MySQL's equivalent,
-- utf8mb4_0900_bin, on MySQL.
--
-- InnoDB keys hold at most 3072 bytes (767 per column prefix in old row
-- formats), less than a key's text may take in utf8mb4 (4 bytes a character):
-- the primary keys therefore hold the SHA-256 of the key text (key_hash) in its
-- place. A key is still its text and its format together; (map_name, map_key)
-- lookups, as the reference's queries make them, use the prefix index beside.

CREATE TABLE IF NOT EXISTS domain_events (
    map_key          MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    aggregate_id     TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    sequence         BIGINT,
    event_type       TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    event_data       JSON         NOT NULL,
    timestamp_millis BIGINT,
    correlation_id   TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    map_name         VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    created_at       DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    key_hash         BINARY(32)   NOT NULL,
    key_format       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL DEFAULT '',
    key_data         LONGBLOB,
    value_format     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    type_name        TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    schema_id        BIGINT,
    exact_data       LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    PRIMARY KEY (map_name, key_hash, key_format),
    KEY idx_domain_events_key (map_name, map_key(255)),
    KEY idx_domain_events_aggregate (aggregate_id(255), sequence),
    KEY idx_domain_events_type (event_type(255)),
    KEY idx_domain_events_timestamp (timestamp_millis)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS domain_views (
    view_name           VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    view_key            MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    view_data           JSON         NOT NULL,
    last_updated_millis BIGINT       NOT NULL,
    created_at          DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    updated_at          DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    key_hash            BINARY(32)   NOT NULL,
    key_format          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL DEFAULT '',
    key_data            LONGBLOB,
    value_format        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    type_name           TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    schema_id           BIGINT,
    exact_data          LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    PRIMARY KEY (view_name, key_hash, key_format),
    KEY idx_domain_views_key (view_name, view_key(255))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Compact schemas by id. fields: [{"name": ..., "kind": ...}] in schema order;
-- write_order: NULL (legacy), [] (pending) or the claimed order.
CREATE TABLE IF NOT EXISTS hz_sidecar_schemas (
    schema_id   BIGINT      NOT NULL PRIMARY KEY,
    type_name   TEXT        CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    fields      JSON        NOT NULL,
    write_order JSON,
    created_at  DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Poison entries, kept exactly as the member sent them.
CREATE TABLE IF NOT EXISTS hz_sidecar_dead_letters (
    id                      BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    map_name                VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    key_data                LONGBLOB     NOT NULL,
    value_data              LONGBLOB     NOT NULL,
    error                   MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    dead_lettered_at_millis BIGINT       NOT NULL,
    created_at              DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    KEY idx_hz_sidecar_dead_letters_map (map_name, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Stored rows a load could not turn back into the member's bytes, once per key.
CREATE TABLE IF NOT EXISTS hz_sidecar_unreadable_rows (
    map_name       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    key_text       MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    key_hash       BINARY(32)   NOT NULL,
    key_format     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    error          MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    seen_at_millis BIGINT       NOT NULL,
    PRIMARY KEY (map_name, key_hash, key_format)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

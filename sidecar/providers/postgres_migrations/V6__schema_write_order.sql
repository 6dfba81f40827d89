-- The order in which a schema's Java serializer writes its variable-size fields
-- (a hand-written CompactSerializer in its call order, the zero-config one in
-- declaration order; only the offset table is in schema order). Kept once with
-- the schema, so that the stored documents hold nothing but the record's fields.
-- NULL: a schema persisted before this column (legacy: its documents keep their
-- "@order"); []: pending, claimed by the first record that needs it; else the
-- names of all the schema's variable-size fields in the claimed order.
ALTER TABLE hz_sidecar_schemas ADD COLUMN IF NOT EXISTS write_order JSONB;

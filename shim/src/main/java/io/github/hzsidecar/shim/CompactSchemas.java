package io.github.hzsidecar.shim;

import com.hazelcast.internal.serialization.Data;
import com.hazelcast.internal.serialization.InternalSerializationService;
import com.hazelcast.internal.serialization.impl.InternalGenericRecord;
import com.hazelcast.internal.serialization.impl.compact.CompactInternalGenericRecord;
import com.hazelcast.internal.serialization.impl.compact.FieldDescriptor;
import com.hazelcast.internal.serialization.impl.compact.Schema;
import com.hazelcast.internal.serialization.impl.compact.SchemaService;
import com.hazelcast.nio.serialization.FieldKind;
import io.github.hzsidecar.proto.v1.SchemaField;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Compact schemas between the member and the wire.
 *
 * <p>Outbound: a Compact value names only its top-level schema id in its bytes; a nested COMPACT or
 * ARRAY_OF_COMPACT field does not name its type in the schema either (the field kind is just COMPACT, and
 * each nested value carries its own schema id in the payload, possibly a different one per value). So the
 * schemas a value uses can only be found by walking the value itself. {@link #collect} does that over the
 * serialized bytes with the member's {@code readAsInternalGenericRecord}, which reads Compact data in place
 * (the same reader Hazelcast's queries use) and resolves every nested record's schema from the member's
 * schema service, where the member registered it when it serialized or received the value.
 *
 * <p>Inbound: {@link #register} puts the schemas of loaded values into the member's schema service before
 * the values are deserialized; see the method for why it may block.
 */
final class CompactSchemas {

    private final InternalSerializationService serialization;
    private final Map<Long, Schema> collected = new LinkedHashMap<>();

    CompactSchemas(InternalSerializationService serialization) {
        this.serialization = serialization;
    }

    /** Adds the schemas of {@code data} (if it is Compact), nested ones included; each schema once. */
    void collect(Data data) {
        if (!data.isCompact()) {
            return;
        }
        try {
            walk(serialization.readAsInternalGenericRecord(data));
        } catch (IOException e) {
            throw new IllegalStateException("Cannot read the Compact schemas of a value", e);
        }
    }

    /** The schemas collected so far, as wire messages. */
    List<io.github.hzsidecar.proto.v1.Schema> toProto() {
        List<io.github.hzsidecar.proto.v1.Schema> result = new ArrayList<>(collected.size());
        for (Schema schema : collected.values()) {
            result.add(toProto(schema));
        }
        return result;
    }

    private void walk(InternalGenericRecord record) {
        Schema schema = ((CompactInternalGenericRecord) record).getSchema();
        collected.putIfAbsent(schema.getSchemaId(), schema);
        for (FieldDescriptor field : schema.getFields()) {
            if (field.getKind() == FieldKind.COMPACT) {
                InternalGenericRecord nested = record.getInternalGenericRecord(field.getFieldName());
                if (nested != null) {
                    walk(nested);
                }
            } else if (field.getKind() == FieldKind.ARRAY_OF_COMPACT) {
                InternalGenericRecord[] items = record.getArrayOfInternalGenericRecord(field.getFieldName());
                if (items != null) {
                    for (InternalGenericRecord item : items) {
                        if (item != null) {
                            walk(item);
                        }
                    }
                }
            }
        }
    }

    static io.github.hzsidecar.proto.v1.Schema toProto(Schema schema) {
        io.github.hzsidecar.proto.v1.Schema.Builder builder = io.github.hzsidecar.proto.v1.Schema.newBuilder()
                .setTypeName(schema.getTypeName())
                .setSchemaId(schema.getSchemaId());
        for (FieldDescriptor field : schema.getFields()) {
            builder.addFields(SchemaField.newBuilder()
                    .setName(field.getFieldName())
                    .setKind(field.getKind().getId()));
        }
        return builder.build();
    }

    /**
     * The member's schema for a wire schema. The id is recomputed by Hazelcast's constructor (the Rabin
     * fingerprint of type name and fields); a sidecar that sent a different id sent an inconsistent schema.
     */
    static Schema fromProto(io.github.hzsidecar.proto.v1.Schema message) {
        List<FieldDescriptor> fields = new ArrayList<>(message.getFieldsCount());
        for (SchemaField field : message.getFieldsList()) {
            FieldKind kind = fieldKind(field.getKind());
            if (kind == null) {
                throw new IllegalArgumentException("Schema '" + message.getTypeName() + "' field '" + field.getName()
                        + "' has unknown FieldKind id " + field.getKind());
            }
            fields.add(new FieldDescriptor(field.getName(), kind));
        }
        Schema schema = new Schema(message.getTypeName(), fields);
        if (schema.getSchemaId() != message.getSchemaId()) {
            throw new IllegalArgumentException("Schema '" + message.getTypeName() + "' arrived with id "
                    + message.getSchemaId() + " but its fields fingerprint to " + schema.getSchemaId());
        }
        return schema;
    }

    private static FieldKind fieldKind(int id) {
        for (FieldKind kind : FieldKind.values()) {
            if (kind.getId() == id) {
                return kind;
            }
        }
        return null;
    }

    /**
     * Makes {@code schemas} known to the member (and the cluster) so that values using them deserialize.
     *
     * <p>A schema the member already knows is skipped. An unknown one is put cluster-wide with
     * {@link SchemaService#put}, which blocks until every member has it: a value loaded into the map is
     * later read by other members and clients, which then ask for its schema, so the local-only
     * {@code putLocal} would hand them ids nobody can resolve. {@code load} may run on a partition thread
     * (hazelcast#6646: never block it on work that needs that same thread); schema replication is sent as
     * generic (non-partition) operations, so it does not wait for the blocked thread, and it is what the
     * member itself does when code on a partition thread, e.g. an entry processor, serializes a Compact
     * value of a new type. It only happens the first time the cluster meets a type, typically the first
     * load after a full cluster restart.
     */
    static void register(SchemaService schemaService, Collection<io.github.hzsidecar.proto.v1.Schema> schemas) {
        for (io.github.hzsidecar.proto.v1.Schema message : schemas) {
            if (schemaService.get(message.getSchemaId()) == null) {
                schemaService.put(fromProto(message));
            }
        }
    }
}

package io.github.hzsidecar.framework;

import com.hazelcast.internal.serialization.impl.compact.CompactGenericRecord;
import com.hazelcast.nio.serialization.FieldKind;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;
import com.hazelcast.nio.serialization.genericrecord.GenericRecordBuilder;
import com.theyawns.framework.store.PartitionedSequenceKey;

import java.lang.reflect.Array;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;

/**
 * The reference framework's data shapes, built deterministically from an index, and a readable
 * dump of any Compact GenericRecord (the form both verification and the dump command compare).
 */
final class Shapes {

    static final long FIRST_SEQUENCE = 1_000_000L;
    static final long FIRST_MILLIS = 1_700_000_000_000L;
    static final ZoneOffset TSTZ_OFFSET = ZoneOffset.ofHours(2);
    private static final String[] EVENT_TYPES = {
        "CustomerCreatedEvent", "CustomerUpdatedEvent", "CustomerDeletedEvent",
    };

    private Shapes() {
    }

    static String partitionKey(long i, int aggregates) {
        return "cust-" + (i % aggregates);
    }

    static PartitionedSequenceKey<String> eventKey(long i, int aggregates) {
        return new PartitionedSequenceKey<>(FIRST_SEQUENCE + i, partitionKey(i, aggregates));
    }

    /** The event record the framework would store under {@link #eventKey}. */
    static GenericRecord event(long i, int aggregates, boolean tstz) {
        String typeName = EVENT_TYPES[(int) (i % EVENT_TYPES.length)];
        long millis = FIRST_MILLIS + i;
        GenericRecordBuilder builder = GenericRecordBuilder.compact(typeName)
                .setString("eventId", "evt-" + i)
                .setString("eventType", typeName);
        if (tstz) {
            builder.setTimestampWithTimezone("timestamp",
                    OffsetDateTime.ofInstant(Instant.ofEpochMilli(millis), TSTZ_OFFSET));
        } else {
            builder.setInt64("timestamp", millis);
        }
        GenericRecord payload = GenericRecordBuilder.compact("CustomerPayload")
                .setString("name", "Customer " + i)
                .setString("email", "customer" + i + "@example.com")
                .setInt32("tier", (int) (i % 4))
                .setFloat64("balance", i * 1.25)
                .setBoolean("vip", i % 2 == 0)
                .build();
        return builder
                .setString("key", partitionKey(i, aggregates))
                .setString("correlationId", i % 7 == 0 ? null : "corr-" + (i / 5))
                .setGenericRecord("payload", payload)
                .build();
    }

    static String viewKey(long i) {
        return "view-" + i;
    }

    /** The materialized view record the framework would store under {@link #viewKey}. */
    static GenericRecord view(long i) {
        return GenericRecordBuilder.compact("CustomerView")
                .setString("customerId", "cust-" + i)
                .setString("name", "Customer " + i)
                .setInt32("orders", (int) (i % 50))
                .setFloat64("total", i * 9.5)
                .setBoolean("active", i % 2 == 0)
                .setNullableInt64("lastOrder", i % 3 == 0 ? null : FIRST_MILLIS + i * 1000)
                .build();
    }

    static String typeName(GenericRecord record) {
        if (record instanceof CompactGenericRecord) {
            return ((CompactGenericRecord) record).getSchema().getTypeName();
        }
        return record.getClass().getName();
    }

    /** {"type": name, "fields": {name: {"kind": K, "value": v}}}, fields in name order. */
    static Map<String, Object> dump(GenericRecord record) {
        Map<String, Object> fields = new LinkedHashMap<>();
        for (String name : new TreeSet<>(record.getFieldNames())) {
            FieldKind kind = record.getFieldKind(name);
            Map<String, Object> field = new LinkedHashMap<>();
            field.put("kind", kind.name());
            field.put("value", fieldValue(record, name, kind));
            fields.put(name, field);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("type", typeName(record));
        out.put("fields", fields);
        return out;
    }

    private static Object fieldValue(GenericRecord r, String name, FieldKind kind) {
        return switch (kind) {
            case BOOLEAN -> r.getBoolean(name);
            case INT8 -> r.getInt8(name);
            case CHAR -> String.valueOf(r.getChar(name));
            case INT16 -> r.getInt16(name);
            case INT32 -> r.getInt32(name);
            case INT64 -> r.getInt64(name);
            case FLOAT32 -> r.getFloat32(name);
            case FLOAT64 -> r.getFloat64(name);
            case STRING -> r.getString(name);
            case DECIMAL -> text(r.getDecimal(name));
            case TIME -> text(r.getTime(name));
            case DATE -> text(r.getDate(name));
            case TIMESTAMP -> text(r.getTimestamp(name));
            case TIMESTAMP_WITH_TIMEZONE -> text(r.getTimestampWithTimezone(name));
            case COMPACT -> dumpOrNull(r.getGenericRecord(name));
            case NULLABLE_BOOLEAN -> r.getNullableBoolean(name);
            case NULLABLE_INT8 -> r.getNullableInt8(name);
            case NULLABLE_INT16 -> r.getNullableInt16(name);
            case NULLABLE_INT32 -> r.getNullableInt32(name);
            case NULLABLE_INT64 -> r.getNullableInt64(name);
            case NULLABLE_FLOAT32 -> r.getNullableFloat32(name);
            case NULLABLE_FLOAT64 -> r.getNullableFloat64(name);
            case ARRAY_OF_BOOLEAN -> list(r.getArrayOfBoolean(name));
            case ARRAY_OF_INT8 -> list(r.getArrayOfInt8(name));
            case ARRAY_OF_CHAR -> list(r.getArrayOfChar(name));
            case ARRAY_OF_INT16 -> list(r.getArrayOfInt16(name));
            case ARRAY_OF_INT32 -> list(r.getArrayOfInt32(name));
            case ARRAY_OF_INT64 -> list(r.getArrayOfInt64(name));
            case ARRAY_OF_FLOAT32 -> list(r.getArrayOfFloat32(name));
            case ARRAY_OF_FLOAT64 -> list(r.getArrayOfFloat64(name));
            case ARRAY_OF_STRING -> list(r.getArrayOfString(name));
            case ARRAY_OF_DECIMAL -> list(r.getArrayOfDecimal(name));
            case ARRAY_OF_TIME -> list(r.getArrayOfTime(name));
            case ARRAY_OF_DATE -> list(r.getArrayOfDate(name));
            case ARRAY_OF_TIMESTAMP -> list(r.getArrayOfTimestamp(name));
            case ARRAY_OF_TIMESTAMP_WITH_TIMEZONE -> list(r.getArrayOfTimestampWithTimezone(name));
            case ARRAY_OF_COMPACT -> list(r.getArrayOfGenericRecord(name));
            case ARRAY_OF_NULLABLE_BOOLEAN -> list(r.getArrayOfNullableBoolean(name));
            case ARRAY_OF_NULLABLE_INT8 -> list(r.getArrayOfNullableInt8(name));
            case ARRAY_OF_NULLABLE_INT16 -> list(r.getArrayOfNullableInt16(name));
            case ARRAY_OF_NULLABLE_INT32 -> list(r.getArrayOfNullableInt32(name));
            case ARRAY_OF_NULLABLE_INT64 -> list(r.getArrayOfNullableInt64(name));
            case ARRAY_OF_NULLABLE_FLOAT32 -> list(r.getArrayOfNullableFloat32(name));
            case ARRAY_OF_NULLABLE_FLOAT64 -> list(r.getArrayOfNullableFloat64(name));
            default -> throw new IllegalStateException("field " + name + ": unsupported kind " + kind);
        };
    }

    private static Map<String, Object> dumpOrNull(GenericRecord record) {
        return record == null ? null : dump(record);
    }

    private static String text(Object value) {
        return value == null ? null : value.toString();
    }

    /** A Java array (primitive or not) as a list of dumpable values; null stays null. */
    private static List<Object> list(Object array) {
        if (array == null) {
            return null;
        }
        int length = Array.getLength(array);
        List<Object> out = new ArrayList<>(length);
        for (int i = 0; i < length; i++) {
            Object item = Array.get(array, i);
            if (item instanceof GenericRecord) {
                out.add(dump((GenericRecord) item));
            } else if (item instanceof Character) {
                out.add(String.valueOf(item));
            } else if (item == null || item instanceof Number || item instanceof Boolean || item instanceof String) {
                out.add(item);
            } else {
                out.add(item.toString());
            }
        }
        return out;
    }

    /** The first difference between two dumps, described with its path; null when equal. */
    static String difference(Object expected, Object actual, String path) {
        if (expected instanceof Map && actual instanceof Map) {
            Map<?, ?> e = (Map<?, ?>) expected;
            Map<?, ?> a = (Map<?, ?>) actual;
            if (!e.keySet().equals(a.keySet())) {
                return path + ": expected names " + e.keySet() + ", got " + a.keySet();
            }
            for (Object name : e.keySet()) {
                String d = difference(e.get(name), a.get(name), path + "." + name);
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (expected instanceof List && actual instanceof List) {
            List<?> e = (List<?>) expected;
            List<?> a = (List<?>) actual;
            if (e.size() != a.size()) {
                return path + ": expected " + e.size() + " items, got " + a.size();
            }
            for (int i = 0; i < e.size(); i++) {
                String d = difference(e.get(i), a.get(i), path + "[" + i + "]");
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (Objects.equals(expected, actual)) {
            return null;
        }
        return path + ": expected " + describe(expected) + ", got " + describe(actual);
    }

    private static String describe(Object value) {
        return value == null ? "null" : value + " (" + value.getClass().getSimpleName() + ")";
    }
}

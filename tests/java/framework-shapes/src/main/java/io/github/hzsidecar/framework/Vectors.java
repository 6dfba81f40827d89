package io.github.hzsidecar.framework;

import com.hazelcast.config.SerializationConfig;
import com.hazelcast.internal.serialization.Data;
import com.hazelcast.internal.serialization.InternalSerializationService;
import com.hazelcast.internal.serialization.impl.DefaultSerializationServiceBuilder;
import com.hazelcast.partition.strategy.DefaultPartitioningStrategy;
import com.theyawns.framework.store.PartitionedSequenceKey;
import io.github.hzsidecar.framework.samples.AuditNote;
import io.github.hzsidecar.framework.samples.CollectionsHolder;
import io.github.hzsidecar.framework.samples.OrderLineKey;
import io.github.hzsidecar.framework.samples.SpecialOrderLineKey;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.reflect.Array;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Test vectors for a Java-serialization reader: objects serialized by a member-side serialization
 * service (Hazelcast's, with the member's default partitioning strategy, so PartitionAware keys
 * carry the partition hash a member would give them), each with a readable description of what
 * the bytes hold.
 *
 * <p>Values in "expect": primitives as JSON (a char as a one-character string), String as a string,
 * null as null, other objects as {"class": name, "fields": {...}}, boxed primitives as
 * {"class": "java.lang.Long", "value": n}, enums as {"enum": class, "name": constant}, arrays as
 * {"array": class, "items": [...]}, collections as {"class": name, "items": [...]} and maps as
 * {"class": name, "entries": {...}} (string keys only).
 */
final class Vectors {

    private static final HexFormat HEX = HexFormat.of();

    private final InternalSerializationService serialization;
    private final List<Map<String, Object>> vectors = new ArrayList<>();

    Vectors() {
        // A member's defaults: its SerializationConfig (big-endian, shared objects on, no compression)
        // and its partitioning strategy, which hashes a PartitionAware key by its partition key.
        serialization = (InternalSerializationService) new DefaultSerializationServiceBuilder()
                .setConfig(new SerializationConfig())
                .setPartitioningStrategy(new DefaultPartitioningStrategy())
                .build();
    }

    static void write(Path out) throws IOException {
        Vectors v = new Vectors();
        v.sequenceKey("psk-string-small", 1L, "cust-1");
        v.sequenceKey("psk-string-as-put-events", Shapes.FIRST_SEQUENCE + 7, "cust-7");
        v.sequenceKey("psk-string-zero-empty-key", 0L, "");
        v.sequenceKey("psk-string-negative", -42L, "neg");
        v.sequenceKey("psk-string-max", Long.MAX_VALUE, "max");
        v.sequenceKey("psk-string-min", Long.MIN_VALUE, "min");
        v.sequenceKey("psk-string-non-ascii", 123_456_789_012L, "ключ-ü-😀");
        v.sequenceKey("psk-string-nul-char", 5L, "nul\u0000char");
        v.sequenceKey("psk-string-long-70000", 9L, "x".repeat(70_000));
        v.sequenceKey("psk-long-key", 77L, 4242L);
        v.sequenceKey("psk-long-key-negative", 78L, -1L);

        v.add("order-line-key-boxed-null", new OrderLineKey("north", 12, 1_700_000_000_123L, true, 12.5,
                null, 'A', (short) -300, (byte) -7, 0.75f), orderLineFields(
                        "north", 12, 1_700_000_000_123L, true, 12.5, null, 'A', (short) -300, (byte) -7, 0.75f));
        v.add("order-line-key-boxed-value", new OrderLineKey("süd", -1, -5L, false, -0.0,
                5, 'ß', Short.MAX_VALUE, Byte.MIN_VALUE, Float.MAX_VALUE), orderLineFields(
                        "süd", -1, -5L, false, -0.0, 5, 'ß', Short.MAX_VALUE, Byte.MIN_VALUE, Float.MAX_VALUE));
        v.add("special-order-line-key", new SpecialOrderLineKey("east", 3, 99L, true, 1.5, 10, 'Z',
                (short) 1, (byte) 1, -2.5f, "web"), special("east", "web"));
        // The same String instance twice: the second occurrence is written as TC_REFERENCE.
        String shared = "same-" + "instance";
        v.add("special-order-line-key-shared-string", new SpecialOrderLineKey(shared, 3, 99L, true, 1.5, 10,
                'Z', (short) 1, (byte) 1, -2.5f, shared), special(shared, shared));

        Map<String, Object> note = object(AuditNote.class.getName(), ordered("author", "auditor", "at", 1_700_000_000_999L));
        note.put("externalData", HEX.formatHex(externalData("auditor", 1_700_000_000_999L)));
        v.add("audit-note-externalizable", new AuditNote("auditor", 1_700_000_000_999L), note);

        ArrayList<String> names = new ArrayList<>(List.of("alpha", "beta", "gamma"));
        HashMap<String, Integer> counts = new HashMap<>(Map.of("one", 1, "two", 2));
        String[] tags = {"red", "green"};
        v.add("array-list-of-strings", names, plain(names));
        v.add("hash-map-string-to-integer", counts, plain(counts));
        v.add("string-array", tags, plain(tags));
        v.add("enum-time-unit-seconds", TimeUnit.SECONDS, plain(TimeUnit.SECONDS));
        v.add("collections-holder", new CollectionsHolder(names, counts, tags, TimeUnit.SECONDS),
                object(CollectionsHolder.class.getName(), ordered(
                        "names", plain(names), "counts", plain(counts), "tags", plain(tags),
                        "unit", plain(TimeUnit.SECONDS))));

        Files.writeString(out, Json.pretty(v.vectors));
    }

    private Map<String, Object> add(String name, Object value, Object expect) {
        Data data = serialization.toData(value);
        Object back = serialization.toObject(data);
        boolean same = value.getClass().isArray()
                ? Arrays.deepEquals((Object[]) value, (Object[]) back)
                : value.equals(back);
        if (!same) {
            throw new IllegalStateException(name + ": does not read back as the object written: " + back);
        }
        Map<String, Object> vector = new LinkedHashMap<>();
        vector.put("name", name);
        vector.put("javaClass", value.getClass().getName());
        vector.put("typeId", data.getType());
        vector.put("dataHex", HEX.formatHex(data.toByteArray()));
        vector.put("expect", expect);
        vectors.add(vector);
        return vector;
    }

    private void sequenceKey(String name, long sequence, Object partitionKey) {
        PartitionedSequenceKey<Object> key = new PartitionedSequenceKey<>(sequence, partitionKey);
        Map<String, Object> vector = add(name, key,
                object(PartitionedSequenceKey.class.getName(), ordered("sequence", sequence, "partitionKey", plain(partitionKey))));
        Data keyData = serialization.toData(key);
        Data partitionKeyData = serialization.toData(partitionKey);
        if (keyData.getPartitionHash() != partitionKeyData.getPartitionHash()) {
            throw new IllegalStateException(name + ": the key's partition hash is not its partition key's");
        }
        vector.put("partitionKeyDataHex", HEX.formatHex(partitionKeyData.toByteArray()));
        vector.put("partitionHash", keyData.getPartitionHash());
    }

    private static Map<String, Object> orderLineFields(String region, int number, long placedAt, boolean priority,
                                                       double weight, Integer boxedQty, char grade, short shortValue,
                                                       byte byteValue, float floatValue) {
        return ordered("region", region, "number", number, "placedAt", placedAt, "priority", priority,
                "weight", weight, "boxedQty", plain(boxedQty), "grade", String.valueOf(grade),
                "shortValue", shortValue, "byteValue", byteValue, "floatValue", floatValue);
    }

    private static Map<String, Object> special(String region, String channel) {
        Map<String, Object> fields = orderLineFields(region, 3, 99L, true, 1.5, 10, 'Z', (short) 1, (byte) 1, -2.5f);
        fields.put("channel", channel);
        Map<String, Object> expect = object(SpecialOrderLineKey.class.getName(), fields);
        expect.put("superclass", OrderLineKey.class.getName());
        return expect;
    }

    /** What AuditNote.writeExternal writes, as java.io.DataOutput encodes it (the block data's bytes). */
    private static byte[] externalData(String author, long at) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeUTF(author);
            out.writeLong(at);
        }
        return bytes.toByteArray();
    }

    private static Map<String, Object> object(String className, Map<String, Object> fields) {
        return ordered("class", className, "fields", fields);
    }

    private static Object plain(Object value) {
        if (value == null || value instanceof String) {
            return value;
        }
        if (value instanceof Number || value instanceof Boolean || value instanceof Character) {
            Object v = value instanceof Character ? String.valueOf(value) : value;
            return ordered("class", value.getClass().getName(), "value", v);
        }
        if (value instanceof Enum) {
            return ordered("enum", ((Enum<?>) value).getDeclaringClass().getName(), "name", ((Enum<?>) value).name());
        }
        if (value.getClass().isArray()) {
            List<Object> items = new ArrayList<>();
            for (int i = 0; i < Array.getLength(value); i++) {
                items.add(plain(Array.get(value, i)));
            }
            return ordered("array", value.getClass().getName(), "items", items);
        }
        if (value instanceof List) {
            List<Object> items = new ArrayList<>();
            for (Object item : (List<?>) value) {
                items.add(plain(item));
            }
            return ordered("class", value.getClass().getName(), "items", items);
        }
        if (value instanceof Map) {
            Map<String, Object> entries = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                entries.put((String) e.getKey(), plain(e.getValue()));
            }
            return ordered("class", value.getClass().getName(), "entries", entries);
        }
        throw new IllegalArgumentException("no plain form for " + value.getClass().getName());
    }

    private static Map<String, Object> ordered(Object... namesAndValues) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            out.put((String) namesAndValues[i], namesAndValues[i + 1]);
        }
        return out;
    }
}

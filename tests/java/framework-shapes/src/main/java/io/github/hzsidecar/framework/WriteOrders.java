package io.github.hzsidecar.framework;

import com.hazelcast.map.IMap;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;
import com.hazelcast.nio.serialization.genericrecord.GenericRecordBuilder;
import io.github.hzsidecar.framework.samples.HandWrittenOrder;
import io.github.hzsidecar.framework.samples.HandWrittenOrderSerializer;
import io.github.hzsidecar.framework.samples.HandWrittenPart;
import io.github.hzsidecar.framework.samples.HandWrittenPartSerializer;
import io.github.hzsidecar.framework.samples.ZeroConfigOrder;
import io.github.hzsidecar.framework.samples.ZeroConfigPart;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Records whose Java serializer writes variable-size fields out of name order, built from an index:
 * kind {@code hand} ({@link HandWrittenOrder}, a hand-written CompactSerializer) or {@code zero}
 * ({@link ZeroConfigOrder}, zero-config). Index i: alpha is null when i % 4 == 3, nested is null when
 * i % 10 == 9, nested code is null when i % 6 == 5, middle has i % 3 items.
 *
 * <p>Verification reads each entry back with {@code map.get} (equal to the original) and checks the
 * member's bytes with {@code map.replace(key, expected, newValue)}: with the map's default BINARY
 * in-memory format the member compares serialized forms ({@code BinaryValueComparator}: both sides
 * {@code toData}, then {@code Data.equals}, every byte past the partition hash). The original must
 * match; its twin, the same field values as a GenericRecord (which Hazelcast writes in name order,
 * same schema id), must not: so the check sees the write order, not just the values.
 */
final class WriteOrders {

    private WriteOrders() {
    }

    static String key(String kind, long i) {
        return kind + "-" + i;
    }

    static String alpha(long i) {
        return i % 4 == 3 ? null : "a-" + i;
    }

    static int[] middle(long i) {
        int[] items = new int[(int) (i % 3)];
        for (int j = 0; j < items.length; j++) {
            items[j] = (int) (i * 10 + j);
        }
        return items;
    }

    static boolean hasNested(long i) {
        return i % 10 != 9;
    }

    static String code(long i) {
        return i % 6 == 5 ? null : "c-" + i;
    }

    /** The original object of kind {@code kind} at index {@code i}. */
    static Object sample(String kind, long i) {
        return switch (kind) {
            case "hand" -> new HandWrittenOrder("z-" + i, alpha(i), 1000 + i, middle(i),
                    hasNested(i) ? new HandWrittenPart("l-" + i, (int) (i % 100), code(i)) : null);
            case "zero" -> new ZeroConfigOrder("z-" + i, 1000 + i, alpha(i), middle(i),
                    hasNested(i) ? new ZeroConfigPart("l-" + i, (int) (i % 100), code(i)) : null);
            default -> throw new FrameworkDriver.UsageError("--kind is hand or zero, got " + kind);
        };
    }

    /** The same values as {@link #sample}, as a GenericRecord of the same schemas (name-order bytes). */
    static GenericRecord twin(String kind, long i) {
        String type = kind.equals("hand") ? HandWrittenOrderSerializer.TYPE_NAME : ZeroConfigOrder.class.getName();
        String partType = kind.equals("hand") ? HandWrittenPartSerializer.TYPE_NAME : ZeroConfigPart.class.getName();
        GenericRecord part = !hasNested(i) ? null : GenericRecordBuilder.compact(partType)
                .setString("label", "l-" + i)
                .setInt32("weight", (int) (i % 100))
                .setString("code", code(i))
                .build();
        return GenericRecordBuilder.compact(type)
                .setString("zeta", "z-" + i)
                .setString("alpha", alpha(i))
                .setInt64("count", 1000 + i)
                .setArrayOfInt32("middle", middle(i))
                .setGenericRecord("nested", part)
                .build();
    }

    /** Checks the entries of indexes [start, start + count); {"checked": n, "mismatches": [...]}. */
    static Map<String, Object> verify(IMap<Object, Object> map, String kind, long start, int count) {
        List<Object> mismatches = new ArrayList<>();
        for (long i = start; i < start + count; i++) {
            String key = key(kind, i);
            Object expected = sample(kind, i);
            String problem = problem(map, key, expected, twin(kind, i));
            if (problem != null) {
                Map<String, Object> mismatch = new LinkedHashMap<>();
                mismatch.put("key", key);
                mismatch.put("problem", problem);
                mismatches.add(mismatch);
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("checked", count);
        result.put("mismatches", mismatches);
        return result;
    }

    private static String problem(IMap<Object, Object> map, String key, Object expected, GenericRecord twin) {
        Object actual = map.get(key);
        if (actual == null) {
            return "missing";
        }
        if (!expected.equals(actual)) {
            return "map.get gave " + actual + ", expected " + expected;
        }
        // A failed replace changes nothing; a successful one puts the same value back.
        if (map.replace(key, twin, expected)) {
            return "replace matched the name-order twin: the member holds name-order bytes";
        }
        if (!map.replace(key, expected, expected)) {
            return "replace did not match the original: the member's bytes differ from the original's";
        }
        return null;
    }
}

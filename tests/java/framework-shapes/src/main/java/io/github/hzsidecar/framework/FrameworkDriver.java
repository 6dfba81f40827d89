package io.github.hzsidecar.framework;

import com.hazelcast.client.HazelcastClient;
import com.hazelcast.client.config.ClientConfig;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;
import com.theyawns.framework.store.PartitionedSequenceKey;
import io.github.hzsidecar.framework.samples.HandWrittenOrderSerializer;
import io.github.hzsidecar.framework.samples.HandWrittenPartSerializer;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Puts the reference framework's data shapes into a cluster and reads them back, as a Hazelcast
 * Java client; writes Java-serialization test vectors. Prints JSON on stdout.
 *
 * <pre>
 * common:  --cluster NAME --address HOST:PORT
 * put-events    --map M --count N [--start S] [--aggregates A] [--timestamp-kind int64|tstz]
 * verify-events --map M --count N [--start S] [--aggregates A] [--timestamp-kind int64|tstz] [--sample K]
 * put-views     --map M --count N [--start S]
 * verify-views  --map M --count N [--start S] [--sample K]
 * dump          --map M --keys-json FILE
 * put-ordered    --map M --kind hand|zero --count N [--start S]
 * verify-ordered --map M --kind hand|zero --count N [--start S]     (see WriteOrders)
 * size          --map M
 * vectors       --out FILE          (no cluster)
 * </pre>
 *
 * Exit codes: 0 success, 1 verification mismatch, 2 usage error, 3 any other failure.
 */
public final class FrameworkDriver {

    static final int OK = 0;
    static final int MISMATCH = 1;
    static final int USAGE = 2;
    static final int FAILURE = 3;
    private static final int CHUNK = 500;

    private final Map<String, String> options;
    private final PrintStream out;

    private FrameworkDriver(Map<String, String> options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    public static void main(String[] args) {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        int code;
        try {
            if (args.length == 0) {
                throw new UsageError("a command is required");
            }
            code = new FrameworkDriver(options(args), out).run(args[0]);
        } catch (UsageError e) {
            System.err.println("usage error: " + e.getMessage());
            code = USAGE;
        } catch (Exception e) {
            e.printStackTrace();
            code = FAILURE;
        }
        out.flush();
        // The client's threads must not keep the JVM alive after a failure.
        System.exit(code);
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new UsageError("expected --name value pairs after the command, got " + args[i]);
            }
            options.put(args[i].substring(2), args[i + 1]);
        }
        return options;
    }

    private int run(String command) throws Exception {
        if (command.equals("vectors")) {
            Vectors.write(Path.of(required("out")));
            out.println(Json.compact(Map.of("out", required("out"))));
            return OK;
        }
        Runnable validate = switch (command) {
            case "put-events", "verify-events" -> () -> {
                count();
                timestampKind();
            };
            case "put-views", "verify-views" -> this::count;
            case "put-ordered", "verify-ordered" -> () -> {
                count();
                WriteOrders.sample(required("kind"), 0);
            };
            case "dump" -> () -> required("keys-json");
            case "size" -> () -> { };
            default -> throw new UsageError("unknown command " + command);
        };
        validate.run();
        String mapName = required("map");
        HazelcastInstance client = connect();
        try {
            IMap<Object, Object> map = client.getMap(mapName);
            return switch (command) {
                case "put-events" -> put(map, i -> Shapes.eventKey(i, aggregates()),
                        i -> Shapes.event(i, aggregates(), timestampKind()));
                case "verify-events" -> verify(map, i -> Shapes.eventKey(i, aggregates()),
                        i -> Shapes.event(i, aggregates(), timestampKind()));
                case "put-views" -> put(map, Shapes::viewKey, Shapes::view);
                case "verify-views" -> verify(map, Shapes::viewKey, Shapes::view);
                case "put-ordered" -> put(map, i -> WriteOrders.key(required("kind"), i),
                        i -> WriteOrders.sample(required("kind"), i));
                case "verify-ordered" -> {
                    Map<String, Object> result = WriteOrders.verify(map, required("kind"), start(), count());
                    out.println(Json.compact(result));
                    yield ((List<?>) result.get("mismatches")).isEmpty() ? OK : MISMATCH;
                }
                case "dump" -> dump(map, Path.of(required("keys-json")));
                default -> {
                    out.println(Json.compact(Map.of("size", map.size())));
                    yield OK;
                }
            };
        } finally {
            client.shutdown();
        }
    }

    private HazelcastInstance connect() {
        String address = required("address");
        Logger.getLogger("").setLevel(Level.WARNING);
        ClientConfig config = new ClientConfig();
        config.setClusterName(required("cluster"));
        config.getNetworkConfig().addAddress(address);
        config.getConnectionStrategyConfig().getConnectionRetryConfig().setClusterConnectTimeoutMillis(30_000);
        config.setProperty("hazelcast.logging.type", "jdk");
        config.setProperty("hazelcast.phone.home.enabled", "false");
        // Registered on the client only; the zero-config samples need nothing.
        config.getSerializationConfig().getCompactSerializationConfig()
                .addSerializer(new HandWrittenOrderSerializer())
                .addSerializer(new HandWrittenPartSerializer());
        return HazelcastClient.newHazelcastClient(config);
    }

    private int put(IMap<Object, Object> map, LongFunction<Object> key, LongFunction<?> value) {
        long start = start();
        int count = count();
        Map<Object, Object> chunk = new LinkedHashMap<>();
        for (long i = start; i < start + count; i++) {
            chunk.put(key.apply(i), value.apply(i));
            if (chunk.size() == CHUNK) {
                map.putAll(chunk);
                chunk.clear();
            }
        }
        if (!chunk.isEmpty()) {
            map.putAll(chunk);
        }
        out.println(Json.compact(Map.of("put", count)));
        return OK;
    }

    private int verify(IMap<Object, Object> map, LongFunction<Object> key, LongFunction<GenericRecord> value) {
        long start = start();
        int count = count();
        int sample = options.containsKey("sample") ? positive("sample") : count;
        int checks = Math.min(sample, count);
        List<Object> mismatches = new ArrayList<>();
        for (int j = 0; j < checks; j++) {
            // Evenly spaced over [start, start + count); every index when checks == count.
            long i = start + (long) j * count / checks;
            Object k = key.apply(i);
            Object actual = map.get(k);
            String problem;
            if (actual == null) {
                problem = "missing";
            } else if (!(actual instanceof GenericRecord)) {
                problem = "not a GenericRecord: " + actual.getClass().getName();
            } else {
                problem = Shapes.difference(Shapes.dump(value.apply(i)), Shapes.dump((GenericRecord) actual), "value");
            }
            if (problem != null) {
                Map<String, Object> mismatch = keyJson(k);
                mismatch.put("problem", problem);
                mismatches.add(mismatch);
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("checked", checks);
        result.put("mismatches", mismatches);
        out.println(Json.compact(result));
        return mismatches.isEmpty() ? OK : MISMATCH;
    }

    private static Map<String, Object> keyJson(Object key) {
        Map<String, Object> out = new LinkedHashMap<>();
        if (key instanceof PartitionedSequenceKey) {
            PartitionedSequenceKey<?> psk = (PartitionedSequenceKey<?>) key;
            out.put("sequence", psk.getSequence());
            out.put("partitionKey", String.valueOf(psk.getPartitionKey()));
        } else {
            out.put("key", String.valueOf(key));
        }
        return out;
    }

    private int dump(IMap<Object, Object> map, Path keysFile) throws Exception {
        Object parsed = Json.parse(Files.readString(keysFile));
        if (!(parsed instanceof List)) {
            throw new UsageError(keysFile + ": expected a JSON array of keys");
        }
        for (Object given : (List<?>) parsed) {
            Object value = map.get(toKey(given));
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("key", given);
            line.put("value", value == null ? null : valueJson(value));
            out.println(Json.compact(line));
        }
        return OK;
    }

    private static Object toKey(Object given) {
        if (given instanceof String) {
            return given;
        }
        if (given instanceof Map) {
            Map<?, ?> m = (Map<?, ?>) given;
            if (m.get("sequence") instanceof Long && m.get("partitionKey") instanceof String) {
                return new PartitionedSequenceKey<>((Long) m.get("sequence"), (String) m.get("partitionKey"));
            }
        }
        throw new UsageError("a key is a string or {\"sequence\": n, \"partitionKey\": \"p\"}, got " + Json.compact(given));
    }

    private static Object valueJson(Object value) {
        if (value instanceof GenericRecord) {
            return Shapes.dump((GenericRecord) value);
        }
        Map<String, Object> other = new LinkedHashMap<>();
        other.put("javaClass", value.getClass().getName());
        other.put("value", String.valueOf(value));
        return other;
    }

    private String required(String name) {
        String value = options.get(name);
        if (value == null) {
            throw new UsageError("--" + name + " is required");
        }
        return value;
    }

    private int positive(String name) {
        int value = integer(name, required(name));
        if (value <= 0) {
            throw new UsageError("--" + name + " must be positive");
        }
        return value;
    }

    private static int integer(String name, String text) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new UsageError("--" + name + " is not an integer: " + text);
        }
    }

    private int count() {
        return positive("count");
    }

    private long start() {
        return options.containsKey("start") ? integer("start", options.get("start")) : 0;
    }

    private int aggregates() {
        return options.containsKey("aggregates") ? positive("aggregates") : 10;
    }

    private boolean timestampKind() {
        String kind = options.getOrDefault("timestamp-kind", "int64");
        return switch (kind) {
            case "int64" -> false;
            case "tstz" -> true;
            default -> throw new UsageError("--timestamp-kind is int64 or tstz, got " + kind);
        };
    }

    /** A command line that does not make sense: exit code 2. */
    static final class UsageError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }
}

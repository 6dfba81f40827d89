package io.github.hzsidecar.bench;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.internal.json.Json;
import com.hazelcast.internal.json.JsonObject;
import com.hazelcast.internal.json.JsonValue;
import com.hazelcast.map.MapLoaderLifecycleSupport;
import com.hazelcast.map.MapStore;
import com.hazelcast.nio.serialization.FieldKind;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;
import com.hazelcast.nio.serialization.genericrecord.GenericRecordBuilder;

import java.sql.Connection;
import java.sql.DriverManager;
import java.math.BigDecimal;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * The hand-rolled baseline: what a Hazelcast user writes instead of the sidecar. Values (GenericRecords
 * of the client's Compact classes) become JSON in the member and go into the same {@code domain_views}
 * table with one JDBC batch per storeAll, in one transaction. Loading reads the same rows back
 * ({@code loadAllKeys}: one SELECT; {@code loadAll}: one {@code = ANY} SELECT per call, on a connection
 * of the calling thread, as Hazelcast loads partitions concurrently) and rebuilds each BenchEvent
 * GenericRecord from its JSON: the baseline of the cold-start case.
 */
public class JdbcBatchMapStore implements MapStore<Object, Object>, MapLoaderLifecycleSupport {

    private static final String UPSERT = "INSERT INTO domain_views (view_name, view_key, key_format,"
            + " value_format, type_name, schema_id, view_data, last_updated_millis)"
            + " VALUES (?, ?, '', 'compact', ?, 0, ?::jsonb, ?)"
            + " ON CONFLICT (view_name, view_key, key_format) DO UPDATE SET view_data = excluded.view_data,"
            + " last_updated_millis = excluded.last_updated_millis, updated_at = now()";

    private String mapName;
    private String url;
    private Connection connection;
    private final List<Connection> loadConnections = Collections.synchronizedList(new ArrayList<>());
    private final ThreadLocal<Connection> loadConnection = new ThreadLocal<>();

    @Override
    public void init(HazelcastInstance instance, Properties properties, String mapName) {
        this.mapName = mapName;
        this.url = properties.getProperty("jdbc.url");
        try {
            connection = DriverManager.getConnection(url);
            connection.setAutoCommit(false);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void destroy() {
        List<Connection> all = new ArrayList<>(loadConnections);
        all.add(connection);
        for (Connection each : all) {
            try {
                each.close();
            } catch (SQLException ignored) {
                // closing anyway
            }
        }
    }

    @Override
    public synchronized void store(Object key, Object value) {
        storeAll(Collections.singletonMap(key, value));
    }

    @Override
    public synchronized void storeAll(Map<Object, Object> map) {
        long now = System.currentTimeMillis();
        try (PreparedStatement statement = connection.prepareStatement(UPSERT)) {
            for (Map.Entry<Object, Object> entry : map.entrySet()) {
                GenericRecord record = (GenericRecord) entry.getValue();
                statement.setString(1, mapName);
                statement.setString(2, String.valueOf(entry.getKey()));
                statement.setString(3, "BenchEvent");
                statement.setString(4, json(record));
                statement.setLong(5, now);
                statement.addBatch();
            }
            statement.executeBatch();
            connection.commit();
        } catch (SQLException e) {
            try {
                connection.rollback();
            } catch (SQLException ignored) {
                // the store fails anyway
            }
            throw new IllegalStateException(e);
        }
    }

    static String json(GenericRecord record) {
        StringBuilder out = new StringBuilder(512).append('{');
        boolean first = true;
        for (String name : record.getFieldNames()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            quote(out, name).append(':');
            FieldKind kind = record.getFieldKind(name);
            switch (kind) {
                case STRING -> {
                    String text = record.getString(name);
                    if (text == null) {
                        out.append("null");
                    } else {
                        quote(out, text);
                    }
                }
                case INT32 -> out.append(record.getInt32(name));
                case INT64 -> out.append(record.getInt64(name));
                case FLOAT64 -> out.append(record.getFloat64(name));
                case BOOLEAN -> out.append(record.getBoolean(name));
                case NULLABLE_FLOAT64 -> out.append(record.getNullableFloat64(name));
                case DECIMAL -> out.append('"').append(record.getDecimal(name).toPlainString()).append('"');
                case DATE -> out.append('"').append(record.getDate(name)).append('"');
                default -> throw new IllegalArgumentException("unsupported field kind " + kind);
            }
        }
        return out.append('}').toString();
    }

    private static StringBuilder quote(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"');
    }

    @Override
    public void delete(Object key) {
        deleteAll(Collections.singletonList(key));
    }

    @Override
    public void deleteAll(Collection<Object> keys) {
        throw new UnsupportedOperationException("the benchmark baseline only writes");
    }

    @Override
    public Object load(Object key) {
        return loadAll(Collections.singletonList(key)).get(key);
    }

    @Override
    public Map<Object, Object> loadAll(Collection<Object> keys) {
        Map<Object, Object> result = new HashMap<>();
        try {
            Connection loader = loader();
            try (PreparedStatement statement = loader.prepareStatement("SELECT view_key, view_data::text"
                    + " FROM domain_views WHERE view_name = ? AND view_key = ANY(?)")) {
                statement.setString(1, mapName);
                statement.setArray(2, loader.createArrayOf("text", keys.stream().map(String::valueOf).toArray()));
                try (ResultSet rows = statement.executeQuery()) {
                    while (rows.next()) {
                        result.put(rows.getString(1), record(Json.parse(rows.getString(2)).asObject()));
                    }
                }
            }
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
        return result;
    }

    @Override
    public Iterable<Object> loadAllKeys() {
        List<Object> keys = new ArrayList<>();
        try (PreparedStatement statement = loader().prepareStatement(
                "SELECT view_key FROM domain_views WHERE view_name = ?")) {
            statement.setString(1, mapName);
            try (ResultSet rows = statement.executeQuery()) {
                while (rows.next()) {
                    keys.add(rows.getString(1));
                }
            }
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
        return keys;
    }

    private Connection loader() throws SQLException {
        Connection mine = loadConnection.get();
        if (mine == null) {
            mine = DriverManager.getConnection(url);
            loadConnection.set(mine);
            loadConnections.add(mine);
        }
        return mine;
    }

    /** The BenchEvent of a row's JSON (as {@link #json} wrote it). */
    static GenericRecord record(JsonObject json) {
        JsonValue discount = json.get("discount");
        return GenericRecordBuilder.compact("BenchEvent")
                .setString("orderId", text(json, "orderId"))
                .setInt64("sequence", json.get("sequence").asLong())
                .setString("eventType", text(json, "eventType"))
                .setInt64("timestampMillis", json.get("timestampMillis").asLong())
                .setString("correlationId", text(json, "correlationId"))
                .setFloat64("amount", json.get("amount").asDouble())
                .setInt32("quantity", json.get("quantity").asInt())
                .setDecimal("price", new BigDecimal(json.get("price").asString()))
                .setString("currency", text(json, "currency"))
                .setBoolean("active", json.get("active").asBoolean())
                .setString("customerName", text(json, "customerName"))
                .setString("note", text(json, "note"))
                .setNullableFloat64("discount", discount.isNull() ? null : discount.asDouble())
                .setDate("createdDate", LocalDate.parse(json.get("createdDate").asString()))
                .build();
    }

    private static String text(JsonObject json, String name) {
        JsonValue value = json.get(name);
        return value.isNull() ? null : value.asString();
    }
}

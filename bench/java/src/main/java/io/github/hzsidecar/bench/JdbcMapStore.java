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
 * of the client's Compact classes) become JSON in the member and go into the sidecar's tables: an event
 * map ({@code *_ES}) appends to {@code domain_events} (INSERT, a key's first event kept), any other map
 * upserts into {@code domain_views}.
 *
 * <p>{@code store} is one single-row INSERT in autocommit, what a user's {@code store} does: Hazelcast
 * calls it in write-through, and in write-behind without write-coalescing once per entry.
 * {@code storeAll} is one JDBC batch in one transaction. Each calling thread has a connection of its
 * own (Hazelcast calls a write-through store from as many threads as there are callers), as a pool would
 * give it. Loading reads the same rows back ({@code loadAllKeys}: one SELECT; {@code loadAll}: one
 * {@code = ANY} SELECT per call) and rebuilds each BenchEvent GenericRecord from its JSON: the baseline of
 * the cold-start case.
 */
public class JdbcMapStore implements MapStore<Object, Object>, MapLoaderLifecycleSupport {

    private static final String UPSERT_VIEW = "INSERT INTO domain_views (view_name, view_key, key_format,"
            + " value_format, type_name, schema_id, view_data, last_updated_millis)"
            + " VALUES (?, ?, '', 'compact', ?, 0, ?::jsonb, ?)"
            + " ON CONFLICT (view_name, view_key, key_format) DO UPDATE SET view_data = excluded.view_data,"
            + " last_updated_millis = excluded.last_updated_millis, updated_at = now()";

    /** The columns the sidecar fills for a BenchEvent under a String key (its key format 'string'). */
    private static final String INSERT_EVENT = "INSERT INTO domain_events (map_name, map_key, key_format,"
            + " value_format, type_name, schema_id, event_data, sequence, event_type, timestamp_millis,"
            + " correlation_id) VALUES (?, ?, 'string', 'compact', ?, 0, ?::jsonb, ?, ?, ?, ?)"
            + " ON CONFLICT (map_name, map_key, key_format) DO NOTHING";

    private String mapName;
    private String url;
    private boolean events;
    private final List<Connection> connections = Collections.synchronizedList(new ArrayList<>());
    private final ThreadLocal<Connection> threadConnection = new ThreadLocal<>();

    @Override
    public void init(HazelcastInstance instance, Properties properties, String mapName) {
        this.mapName = mapName;
        this.url = properties.getProperty("jdbc.url");
        this.events = mapName.endsWith("_ES");
    }

    @Override
    public void destroy() {
        for (Connection each : new ArrayList<>(connections)) {
            try {
                each.close();
            } catch (SQLException ignored) {
                // closing anyway
            }
        }
    }

    @Override
    public void store(Object key, Object value) {
        try (PreparedStatement statement = connection().prepareStatement(events ? INSERT_EVENT : UPSERT_VIEW)) {
            bind(statement, key, (GenericRecord) value, System.currentTimeMillis());
            statement.executeUpdate();
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void storeAll(Map<Object, Object> map) {
        long now = System.currentTimeMillis();
        Connection connection;
        try {
            connection = connection();
            connection.setAutoCommit(false);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
        try (PreparedStatement statement = connection.prepareStatement(events ? INSERT_EVENT : UPSERT_VIEW)) {
            for (Map.Entry<Object, Object> entry : map.entrySet()) {
                bind(statement, entry.getKey(), (GenericRecord) entry.getValue(), now);
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
        } finally {
            try {
                connection.setAutoCommit(true);
            } catch (SQLException ignored) {
                // the next call finds out
            }
        }
    }

    private void bind(PreparedStatement statement, Object key, GenericRecord record, long now)
            throws SQLException {
        statement.setString(1, mapName);
        statement.setString(2, String.valueOf(key));
        statement.setString(3, "BenchEvent");
        statement.setString(4, json(record));
        if (events) {
            statement.setLong(5, record.getInt64("sequence"));
            statement.setString(6, record.getString("eventType"));
            statement.setLong(7, record.getInt64("timestampMillis"));
            statement.setString(8, record.getString("correlationId"));
        } else {
            statement.setLong(5, now);
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
            Connection loader = connection();
            try (PreparedStatement statement = loader.prepareStatement(events
                    ? "SELECT map_key, event_data::text FROM domain_events WHERE map_name = ? AND map_key = ANY(?)"
                    : "SELECT view_key, view_data::text FROM domain_views WHERE view_name = ? AND view_key = ANY(?)")) {
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
        try (PreparedStatement statement = connection().prepareStatement(events
                ? "SELECT map_key FROM domain_events WHERE map_name = ?"
                : "SELECT view_key FROM domain_views WHERE view_name = ?")) {
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

    /** The calling thread's connection, in autocommit. */
    private Connection connection() throws SQLException {
        Connection mine = threadConnection.get();
        if (mine == null) {
            mine = DriverManager.getConnection(url);
            threadConnection.set(mine);
            connections.add(mine);
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

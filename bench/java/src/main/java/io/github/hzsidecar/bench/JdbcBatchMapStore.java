package io.github.hzsidecar.bench;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.MapLoaderLifecycleSupport;
import com.hazelcast.map.MapStore;
import com.hazelcast.nio.serialization.FieldKind;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.Collection;
import java.util.Collections;
import java.util.Map;
import java.util.Properties;

/**
 * The hand-rolled baseline: what a Hazelcast user writes instead of the sidecar. Values (GenericRecords
 * of the client's Compact classes) become JSON in the member and go into the same {@code domain_views}
 * table with one JDBC batch per storeAll, in one transaction. Write-only: the benchmark never loads
 * through it.
 */
public class JdbcBatchMapStore implements MapStore<Object, Object>, MapLoaderLifecycleSupport {

    private static final String UPSERT = "INSERT INTO domain_views (view_name, view_key, key_format,"
            + " value_format, type_name, schema_id, view_data, last_updated_millis)"
            + " VALUES (?, ?, 'string', 'compact', ?, 0, ?::jsonb, ?)"
            + " ON CONFLICT (view_name, view_key) DO UPDATE SET view_data = excluded.view_data,"
            + " last_updated_millis = excluded.last_updated_millis, updated_at = now()";

    private String mapName;
    private Connection connection;

    @Override
    public void init(HazelcastInstance instance, Properties properties, String mapName) {
        this.mapName = mapName;
        try {
            connection = DriverManager.getConnection(properties.getProperty("jdbc.url"));
            connection.setAutoCommit(false);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void destroy() {
        try {
            connection.close();
        } catch (SQLException ignored) {
            // closing anyway
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
        return null;
    }

    @Override
    public Map<Object, Object> loadAll(Collection<Object> keys) {
        return Collections.emptyMap();
    }

    @Override
    public Iterable<Object> loadAllKeys() {
        return null;
    }
}

package io.github.hzsidecar.shim;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * The map-store properties the shim reads (set under {@code map-store.properties} in the member's
 * configuration). Parsed once per map; a bad value fails the map's initialisation with the property's name.
 *
 * @param address               {@value #ADDRESS}: where the sidecar listens (required)
 * @param deadlineMs            {@value #DEADLINE_MS}: deadline of every Store, Delete and Load call
 * @param token                 {@value #TOKEN}: bearer token sent as {@code authorization} metadata, or null
 * @param tls                   TLS settings; null for plaintext
 * @param loadAllKeysBatchSize  {@value #LOAD_ALL_KEYS_BATCH_SIZE}: keys per streamed batch, 0 lets the sidecar choose
 * @param loadAllKeysDeadlineMs {@value #LOAD_ALL_KEYS_DEADLINE_MS}: deadline of the whole loadAllKeys stream
 * @param loadMaxKeys           {@value #LOAD_MAX_KEYS}: keys per Load call; a larger loadAll is split
 * @param maxMessageBytes       {@value #MAX_MESSAGE_BYTES}: the sidecar's {@code listen.max-message-bytes}, the
 *                              largest message it receives; a loadAll is split so that the keys of each call
 *                              take at most half of it (the answer needs room for entries beside the keys it
 *                              defers)
 * @param transport             {@value #TRANSPORT}: how Store, Delete and Load calls travel: {@code stream} (the
 *                              default) multiplexes them on one long-lived {@code Calls} stream per channel (a
 *                              sidecar without it is detected and answered by unary RPCs); {@code unary} sends
 *                              each as its own RPC
 */
record SidecarSettings(
        SidecarAddress address,
        long deadlineMs,
        String token,
        Tls tls,
        int loadAllKeysBatchSize,
        long loadAllKeysDeadlineMs,
        int loadMaxKeys,
        int maxMessageBytes,
        Transport transport) {

    static final String ADDRESS = "sidecar.address";
    static final String DEADLINE_MS = "sidecar.deadline-ms";
    static final String TOKEN = "sidecar.token";
    static final String TLS_ENABLED = "sidecar.tls.enabled";
    static final String TLS_CA_FILE = "sidecar.tls.ca-file";
    static final String TLS_CERT_FILE = "sidecar.tls.cert-file";
    static final String TLS_KEY_FILE = "sidecar.tls.key-file";
    static final String LOAD_ALL_KEYS_BATCH_SIZE = "sidecar.load-all-keys.batch-size";
    static final String LOAD_ALL_KEYS_DEADLINE_MS = "sidecar.load-all-keys.deadline-ms";
    static final String LOAD_MAX_KEYS = "sidecar.load.max-keys-per-call";
    static final String MAX_MESSAGE_BYTES = "sidecar.max-message-bytes";
    static final String TRANSPORT = "sidecar.transport";

    static final long DEFAULT_DEADLINE_MS = 10_000;
    static final long DEFAULT_LOAD_ALL_KEYS_DEADLINE_MS = 600_000;
    static final int DEFAULT_LOAD_MAX_KEYS = 10_000;
    /** The sidecar's default {@code listen.max-message-bytes}. */
    static final int DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

    /** How Store, Delete and Load calls travel (loadAllKeys is always its own server-streaming RPC). */
    enum Transport {
        /** Multiplexed on one long-lived {@code Calls} stream per channel and token ({@link CallStream}). */
        STREAM,
        /** One unary RPC per call. */
        UNARY
    }

    /**
     * TLS towards the sidecar. A null CA file trusts the JDK's default roots; a certificate and key
     * (both or neither) authenticate the member to the sidecar (mTLS).
     */
    record Tls(Path caFile, Path certFile, Path keyFile) {
    }

    static SidecarSettings fromProperties(Properties properties) {
        String address = trimmed(properties, ADDRESS);
        if (address == null) {
            throw new IllegalArgumentException("Missing map-store property " + ADDRESS
                    + " (unix:///path/to.sock or host:port)");
        }
        return new SidecarSettings(
                SidecarAddress.parse(address),
                positive(properties, DEADLINE_MS, DEFAULT_DEADLINE_MS, Long.MAX_VALUE),
                trimmed(properties, TOKEN),
                tls(properties),
                (int) nonNegativeLong(properties, LOAD_ALL_KEYS_BATCH_SIZE, 0, Integer.MAX_VALUE),
                positive(properties, LOAD_ALL_KEYS_DEADLINE_MS, DEFAULT_LOAD_ALL_KEYS_DEADLINE_MS, Long.MAX_VALUE),
                (int) positive(properties, LOAD_MAX_KEYS, DEFAULT_LOAD_MAX_KEYS, Integer.MAX_VALUE),
                (int) positive(properties, MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES, Integer.MAX_VALUE),
                transport(properties));
    }

    private static Transport transport(Properties properties) {
        String value = trimmed(properties, TRANSPORT);
        if (value == null || value.equalsIgnoreCase("stream")) {
            return Transport.STREAM;
        }
        if (value.equalsIgnoreCase("unary")) {
            return Transport.UNARY;
        }
        throw new IllegalArgumentException(TRANSPORT + " must be stream or unary, not '" + value + "'");
    }

    private static Tls tls(Properties properties) {
        String enabled = trimmed(properties, TLS_ENABLED);
        if (enabled == null || enabled.equalsIgnoreCase("false")) {
            return null;
        }
        if (!enabled.equalsIgnoreCase("true")) {
            throw new IllegalArgumentException(TLS_ENABLED + " must be true or false, not '" + enabled + "'");
        }
        Path cert = readableFile(properties, TLS_CERT_FILE);
        Path key = readableFile(properties, TLS_KEY_FILE);
        if ((cert == null) != (key == null)) {
            throw new IllegalArgumentException(TLS_CERT_FILE + " and " + TLS_KEY_FILE + " go together (mTLS)");
        }
        return new Tls(readableFile(properties, TLS_CA_FILE), cert, key);
    }

    private static Path readableFile(Properties properties, String name) {
        String value = trimmed(properties, name);
        if (value == null) {
            return null;
        }
        Path path = Path.of(value);
        if (!Files.isReadable(path)) {
            throw new IllegalArgumentException(name + ": cannot read " + path);
        }
        return path;
    }

    private static long positive(Properties properties, String name, long defaultValue, long max) {
        long value = nonNegativeLong(properties, name, defaultValue, max);
        if (value == 0) {
            throw new IllegalArgumentException(name + " must be positive");
        }
        return value;
    }

    private static long nonNegativeLong(Properties properties, String name, long defaultValue, long max) {
        String value = trimmed(properties, name);
        if (value == null) {
            return defaultValue;
        }
        try {
            long parsed = Long.parseLong(value);
            if (parsed < 0 || parsed > max) {
                throw new IllegalArgumentException(name + " must be in 0.." + max + ", not " + value);
            }
            return parsed;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a whole number, not '" + value + "'", e);
        }
    }

    private static String trimmed(Properties properties, String name) {
        String value = properties.getProperty(name);
        return value == null || value.isBlank() ? null : value.strip();
    }
}

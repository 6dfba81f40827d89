package io.github.hzsidecar.shim;

import org.junit.jupiter.api.Test;

import java.util.Properties;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SidecarSettingsTest {

    @Test
    void unixSocketAddressAcceptsUriAndPathForms() {
        assertEquals("/run/hz/sidecar.sock", SidecarAddress.parse("unix:///run/hz/sidecar.sock").unixPath());
        assertEquals("/tmp/s.sock", SidecarAddress.parse("unix:/tmp/s.sock").unixPath());
        assertTrue(SidecarAddress.parse("unix:///tmp/s.sock").isUnixSocket());
        assertEquals("unix:///tmp/s.sock", SidecarAddress.parse("unix:///tmp/s.sock").toString());
    }

    @Test
    void tcpAddressAcceptsHostPortAndBracketedIpv6() {
        SidecarAddress tcp = SidecarAddress.parse("sidecar.local:50051");
        assertFalse(tcp.isUnixSocket());
        assertEquals("sidecar.local", tcp.host());
        assertEquals(50051, tcp.port());
        SidecarAddress v6 = SidecarAddress.parse("[::1]:7000");
        assertEquals("::1", v6.host());
        assertEquals("[::1]:7000", v6.toString());
    }

    @Test
    void malformedAddressesAreRefusedWithThePropertyName() {
        for (String bad : new String[] {"localhost", "localhost:", ":50051", "host:0", "host:70000", "host:abc",
                "::1:50051", "unix://relative.sock"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SidecarAddress.parse(bad));
            assertTrue(e.getMessage().contains(SidecarSettings.ADDRESS), e.getMessage());
        }
    }

    @Test
    void defaultsApplyWhenOnlyTheAddressIsSet() {
        SidecarSettings settings = SidecarSettings.fromProperties(properties(SidecarSettings.ADDRESS, "localhost:1"));
        assertEquals(SidecarSettings.DEFAULT_DEADLINE_MS, settings.deadlineMs());
        assertNull(settings.token());
        assertNull(settings.tls());
        assertEquals(0, settings.loadAllKeysBatchSize());
        assertEquals(SidecarSettings.DEFAULT_LOAD_MAX_KEYS, settings.loadMaxKeys());
        assertEquals(64 * 1024 * 1024, settings.maxMessageBytes());
        assertEquals(SidecarSettings.Transport.STREAM, settings.transport());
    }

    @Test
    void everyPropertyIsRead() {
        SidecarSettings settings = SidecarSettings.fromProperties(properties(
                SidecarSettings.ADDRESS, "unix:///tmp/x.sock",
                SidecarSettings.DEADLINE_MS, "2500",
                SidecarSettings.TOKEN, " secret ",
                SidecarSettings.TLS_ENABLED, "false",
                SidecarSettings.LOAD_ALL_KEYS_BATCH_SIZE, "500",
                SidecarSettings.LOAD_ALL_KEYS_DEADLINE_MS, "60000",
                SidecarSettings.LOAD_MAX_KEYS, "100",
                SidecarSettings.MAX_MESSAGE_BYTES, "65536",
                SidecarSettings.TRANSPORT, " unary "));
        assertEquals(2500, settings.deadlineMs());
        assertEquals("secret", settings.token());
        assertEquals(500, settings.loadAllKeysBatchSize());
        assertEquals(60000, settings.loadAllKeysDeadlineMs());
        assertEquals(100, settings.loadMaxKeys());
        assertEquals(65536, settings.maxMessageBytes());
        assertEquals(SidecarSettings.Transport.UNARY, settings.transport());
    }

    @Test
    void transportIsStreamOrUnary() {
        assertEquals(SidecarSettings.Transport.STREAM, SidecarSettings.fromProperties(
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.TRANSPORT, "stream")).transport());
        assertEquals(SidecarSettings.Transport.STREAM, SidecarSettings.fromProperties(
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.TRANSPORT, " ")).transport());
        assertEquals(SidecarSettings.Transport.UNARY, SidecarSettings.fromProperties(
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.TRANSPORT, "UNARY")).transport());
    }

    @Test
    void badValuesNameTheProperty() {
        assertMessageNames(SidecarSettings.ADDRESS, new Properties());
        assertMessageNames(SidecarSettings.DEADLINE_MS,
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.DEADLINE_MS, "soon"));
        assertMessageNames(SidecarSettings.DEADLINE_MS,
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.DEADLINE_MS, "0"));
        assertMessageNames(SidecarSettings.TRANSPORT,
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.TRANSPORT, "grpc"));
        assertMessageNames(SidecarSettings.TLS_ENABLED,
                properties(SidecarSettings.ADDRESS, "h:1", SidecarSettings.TLS_ENABLED, "yes"));
        assertMessageNames(SidecarSettings.TLS_CA_FILE, properties(SidecarSettings.ADDRESS, "h:1",
                SidecarSettings.TLS_ENABLED, "true", SidecarSettings.TLS_CA_FILE, "/nonexistent/ca.pem"));
    }

    private static void assertMessageNames(String property, Properties properties) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SidecarSettings.fromProperties(properties));
        assertTrue(e.getMessage().contains(property), e.getMessage());
    }

    static Properties properties(String... keyValues) {
        Properties properties = new Properties();
        for (int i = 0; i < keyValues.length; i += 2) {
            properties.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return properties;
    }
}

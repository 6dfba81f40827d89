package io.github.hzsidecar.shim;

import io.grpc.Metadata;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SidecarExceptionTest {

    private static SidecarException of(Status status) {
        return SidecarException.of(status, "orders_VIEW", "storeAll", 3, null);
    }

    @Test
    void unavailableDeadlineAndInternalAreRetriable() {
        for (Status status : new Status[] {Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.INTERNAL}) {
            SidecarException e = of(status.withDescription("database is down"));
            assertInstanceOf(SidecarException.Unavailable.class, e);
            assertTrue(e.isRetriable());
            assertEquals(status.getCode(), e.code());
        }
    }

    @Test
    void resourceExhaustedIsRetriableUnlessTheSidecarMarksAnEntryTooLarge() {
        Status status = Status.RESOURCE_EXHAUSTED.withDescription("key 0x01: its value is 9000000 bytes");
        assertTrue(SidecarException.of(status.asRuntimeException(), "orders_VIEW", "load", 1).isRetriable());
        Metadata trailers = new Metadata();
        trailers.put(SidecarException.ENTRY_TOO_LARGE, "9000100");
        SidecarException e = SidecarException.of(status.asRuntimeException(trailers), "orders_VIEW", "load", 1);
        assertInstanceOf(SidecarException.Rejected.class, e);
        assertFalse(e.isRetriable());
        assertTrue(e.getMessage().contains("9000000 bytes"), e.getMessage());
        assertTrue(e.getMessage().contains("listen.max-message-bytes"), e.getMessage());
    }

    @Test
    void invalidArgumentIsRejectedAndNotRetriable() {
        SidecarException e = of(Status.INVALID_ARGUMENT.withDescription("key 0x01: fingerprint mismatch"));
        assertInstanceOf(SidecarException.Rejected.class, e);
        assertFalse(e.isRetriable());
    }

    @Test
    void authenticationAndPreconditionFailuresAreConfigurationErrors() {
        SidecarException auth = of(Status.UNAUTHENTICATED.withDescription("bad token"));
        assertInstanceOf(SidecarException.Misconfigured.class, auth);
        assertTrue(auth.getMessage().contains(SidecarSettings.TOKEN), auth.getMessage());
        assertInstanceOf(SidecarException.Misconfigured.class,
                of(Status.FAILED_PRECONDITION.withDescription("map orders_VIEW is not routed")));
    }

    @Test
    void messageCarriesMapOperationCountAndTheSidecarsMessage() {
        String message = of(Status.UNAVAILABLE.withDescription("connection refused by postgres")).getMessage();
        assertTrue(message.contains("orders_VIEW"), message);
        assertTrue(message.contains("storeAll"), message);
        assertTrue(message.contains("3 entries"), message);
        assertTrue(message.contains("UNAVAILABLE"), message);
        assertTrue(message.contains("connection refused by postgres"), message);
    }
}

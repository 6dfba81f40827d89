package io.github.hzsidecar.shim;

import io.github.hzsidecar.proto.v1.EntryResult;
import io.github.hzsidecar.proto.v1.EntryStatus;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StoreOutcomeTest {

    private static final EntryResult WRITTEN = EntryResult.newBuilder().setStatus(EntryStatus.ENTRY_STATUS_WRITTEN).build();
    private static final EntryResult DEAD = EntryResult.newBuilder()
            .setStatus(EntryStatus.ENTRY_STATUS_DEAD_LETTERED).setMessage("corrupt").build();

    private static EntryResult failed(Status.Code code, String message) {
        return EntryResult.newBuilder().setStatus(EntryStatus.ENTRY_STATUS_FAILED)
                .setCode(code.value()).setMessage(message).build();
    }

    @Test
    void writtenAndDeadLetteredEntriesAreRemovedFailedOnesStay() {
        Map<Object, Object> entries = new HashMap<>(Map.of("a", 1, "b", 2, "c", 3, "d", 4));
        List<Object> keys = List.of("a", "b", "c", "d");
        StoreOutcome outcome = StoreOutcome.apply(keys, List.of(
                WRITTEN, failed(Status.Code.UNAVAILABLE, "db down"), DEAD, failed(Status.Code.INTERNAL, "x")), entries);
        assertEquals(Map.of("b", 2, "d", 4), entries);
        assertEquals(1, outcome.written());
        assertEquals(1, outcome.deadLettered());
        assertEquals(2, outcome.failed());
        Status status = outcome.failureStatus();
        assertEquals(Status.Code.UNAVAILABLE, status.getCode());
        assertTrue(status.getDescription().contains("2 of 4"), status.getDescription());
        assertTrue(status.getDescription().contains("db down"), status.getDescription());
    }

    @Test
    void entriesRefusedWithInvalidArgumentAreFinishedAndListedOtherFailuresStay() {
        Map<Object, Object> entries = new HashMap<>(Map.of("a", 1, "b", 2, "c", 3));
        StoreOutcome outcome = StoreOutcome.apply(List.of("a", "b", "c"), List.of(
                failed(Status.Code.INVALID_ARGUMENT, "entry #0 cannot be decoded"),
                failed(Status.Code.FAILED_PRECONDITION, "map is not routed"), WRITTEN), entries);
        assertEquals(Map.of("b", 2), entries);
        assertEquals(List.of("key a: entry #0 cannot be decoded"), outcome.rejected());
        assertEquals(1, outcome.failed());
        assertEquals(Status.Code.FAILED_PRECONDITION, outcome.failureStatus().getCode());
        assertTrue(outcome.failureStatus().getDescription().contains("1 of 3"));
    }

    @Test
    void allWrittenEmptiesTheMap() {
        Map<Object, Object> entries = new HashMap<>(Map.of("a", 1, "b", 2));
        StoreOutcome outcome = StoreOutcome.apply(List.of("a", "b"), List.of(WRITTEN, WRITTEN), entries);
        assertTrue(entries.isEmpty());
        assertEquals(0, outcome.failed());
    }

    @Test
    void unspecifiedStatusCountsAsFailed() {
        Map<Object, Object> entries = new HashMap<>(Map.of("a", 1));
        StoreOutcome outcome = StoreOutcome.apply(List.of("a"), List.of(EntryResult.getDefaultInstance()), entries);
        assertEquals(1, outcome.failed());
        assertEquals(Map.of("a", 1), entries);
        assertEquals(Status.Code.UNKNOWN, outcome.failureStatus().getCode());
    }

    @Test
    void wrongNumberOfResultsRemovesNothingAndThrows() {
        Map<Object, Object> entries = new HashMap<>(Map.of("a", 1, "b", 2));
        assertThrows(IllegalStateException.class, () -> StoreOutcome.apply(List.of("a", "b"), List.of(WRITTEN), entries));
        assertEquals(2, entries.size());
    }
}

package io.github.hzsidecar.shim;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class TraceParentTest {

    @Test
    void headerIsAVersion00SampledW3cTraceparent() {
        TraceParent trace = TraceParent.random();
        assertTrue(trace.header().matches("00-[0-9a-f]{32}-[0-9a-f]{16}-01"), trace.header());
        assertTrue(trace.header().contains(trace.traceId() + "-" + trace.spanId()));
        assertNotEquals("0".repeat(32), trace.traceId());
        assertNotEquals("0".repeat(16), trace.spanId());
    }

    @Test
    void everyCallStartsItsOwnTrace() {
        assertNotEquals(TraceParent.random().traceId(), TraceParent.random().traceId());
    }
}

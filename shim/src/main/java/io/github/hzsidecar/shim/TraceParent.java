package io.github.hzsidecar.shim;

import io.grpc.ClientInterceptor;
import io.grpc.Context;
import io.grpc.Metadata;

import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The W3C trace context of one MapStore call (https://www.w3.org/TR/trace-context/#traceparent-header).
 *
 * <p>A Hazelcast member runs MapStore calls on its own partition and write-behind threads, where no trace
 * of the application is current (clients cannot pass one to the member), so the shim starts a trace per
 * call: a random trace id, a random parent span id standing for the shim's side of the call, sampled. The
 * sidecar's spans (decode, provider call, retries) are children of it, and the shim writes the trace id
 * into its log (FINE for every call, WARNING with a failure), which is how a member's log line leads to
 * the sidecar's spans. No OpenTelemetry dependency is needed on either classpath.
 *
 * <p>Also the client interceptor that sends it with a unary RPC: the context is carried to the interceptor in
 * the gRPC {@link Context} of the calling thread ({@link #CURRENT}), so a call started outside one gets its own.
 * A call on the call stream ({@link CallStream}) carries its {@link #header()} in the {@code Call} instead.
 */
record TraceParent(String traceId, String spanId) {

    static final Metadata.Key<String> HEADER = Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER);
    static final Context.Key<TraceParent> CURRENT = Context.key("hz-sidecar-traceparent");
    private static final HexFormat HEX = HexFormat.of();

    /** A new trace: 16 random bytes of trace id and 8 of span id, never all zero (both invalid). */
    static TraceParent random() {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        long high;
        long low;
        do {
            high = random.nextLong();
            low = random.nextLong();
        } while (high == 0 && low == 0);
        long span;
        do {
            span = random.nextLong();
        } while (span == 0);
        return new TraceParent(HEX.toHexDigits(high) + HEX.toHexDigits(low), HEX.toHexDigits(span));
    }

    /** The header value: version 00, sampled. */
    String header() {
        return "00-" + traceId + "-" + spanId + "-01";
    }

    /** Adds the {@code traceparent} of the current context (or of a new trace) to every call. */
    static ClientInterceptor interceptor() {
        return new PerCallHeader(HEADER, () -> {
            TraceParent trace = CURRENT.get();
            return (trace != null ? trace : random()).header();
        });
    }
}

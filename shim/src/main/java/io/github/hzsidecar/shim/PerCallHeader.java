package io.github.hzsidecar.shim;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.util.function.Supplier;

/**
 * A client interceptor that adds one header whose value is computed when each call starts
 * (the {@code traceparent} of the current call, the member's current cluster size). Static
 * headers use grpc's {@code MetadataUtils.newAttachHeadersInterceptor} instead.
 */
final class PerCallHeader implements ClientInterceptor {
    private final Metadata.Key<String> key;
    private final Supplier<String> value;

    PerCallHeader(Metadata.Key<String> key, Supplier<String> value) {
        this.key = key;
        this.value = value;
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
            MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
            @Override
            public void start(Listener<R> listener, Metadata headers) {
                headers.put(key, value.get());
                super.start(listener, headers);
            }
        };
    }
}

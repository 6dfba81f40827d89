package io.github.hzsidecar.shim;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NegotiationType;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;

import javax.net.ssl.SSLException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One gRPC channel per sidecar endpoint, shared by every map of the JVM that points at it and closed when
 * the last of them is destroyed. A channel multiplexes any number of concurrent calls, so one is enough.
 * Its maps' Store, Delete and Load calls share one {@link CallStream} per bearer token (the token is the
 * stream's metadata, so maps with different tokens never share a stream).
 */
final class SidecarChannels {

    /** What makes two maps' connections interchangeable: the endpoint and how it is secured. */
    record Endpoint(SidecarAddress address, SidecarSettings.Tls tls) {
    }

    private static final long SHUTDOWN_GRACE_MS = 5_000;

    private static final class Shared {
        final ManagedChannel channel;
        final EventLoopGroup eventLoop;
        /** By bearer token (null: none); each opens its stream on its first call. */
        final Map<String, CallStream> streams = new HashMap<>();
        int references;

        Shared(ManagedChannel channel, EventLoopGroup eventLoop) {
            this.channel = channel;
            this.eventLoop = eventLoop;
        }
    }

    private static final Map<Endpoint, Shared> CHANNELS = new HashMap<>();

    private SidecarChannels() {
    }

    /** The channel for {@code endpoint}, opened on first use; every call must be paired with {@link #release}. */
    static synchronized ManagedChannel acquire(Endpoint endpoint) {
        Shared shared = CHANNELS.get(endpoint);
        if (shared == null) {
            shared = open(endpoint);
            CHANNELS.put(endpoint, shared);
        }
        shared.references++;
        return shared.channel;
    }

    /**
     * The call stream of {@code endpoint}'s channel for maps with bearer token {@code token} (null: none);
     * only between {@link #acquire} and {@link #release}.
     */
    static synchronized CallStream calls(Endpoint endpoint, String token) {
        Shared shared = CHANNELS.get(endpoint);
        if (shared == null) {
            throw new IllegalStateException("No channel to " + endpoint.address() + " is acquired");
        }
        return shared.streams.computeIfAbsent(token, t -> new CallStream(shared.channel, t));
    }

    /**
     * Gives back a channel from {@link #acquire}; the last release completes its call streams (calls still
     * waiting on them fail with UNAVAILABLE), then shuts it down.
     */
    static void release(Endpoint endpoint) {
        Shared closing;
        synchronized (SidecarChannels.class) {
            Shared shared = CHANNELS.get(endpoint);
            if (shared == null || --shared.references > 0) {
                return;
            }
            CHANNELS.remove(endpoint);
            closing = shared;
        }
        for (CallStream stream : closing.streams.values()) {
            stream.close();
        }
        closing.channel.shutdown();
        try {
            if (!closing.channel.awaitTermination(SHUTDOWN_GRACE_MS, TimeUnit.MILLISECONDS)) {
                closing.channel.shutdownNow();
            }
        } catch (InterruptedException e) {
            closing.channel.shutdownNow();
            Thread.currentThread().interrupt();
        } finally {
            if (closing.eventLoop != null) {
                closing.eventLoop.shutdownGracefully(0, SHUTDOWN_GRACE_MS, TimeUnit.MILLISECONDS);
            }
        }
    }

    static synchronized int openChannelCount() {
        return CHANNELS.size();
    }

    private static Shared open(Endpoint endpoint) {
        SidecarAddress address = endpoint.address();
        NettyChannelBuilder builder;
        EventLoopGroup eventLoop = null;
        if (address.isUnixSocket()) {
            if (!Epoll.isAvailable()) {
                throw new IllegalStateException("Unix domain socket " + address
                        + " needs Netty's native epoll transport, which is unavailable here; use host:port",
                        Epoll.unavailabilityCause());
            }
            eventLoop = new EpollEventLoopGroup(1, new DefaultThreadFactory("hz-sidecar-uds", true));
            builder = NettyChannelBuilder.forAddress(new DomainSocketAddress(address.unixPath()))
                    .eventLoopGroup(eventLoop)
                    .channelType(EpollDomainSocketChannel.class)
                    // grpc-java's transport sets SO_KEEPALIVE on every channel it opens, a TCP option that a
                    // domain socket does not have: Netty then logs "Unknown channel option 'SO_KEEPALIVE'"
                    // in the member at each connection. Options given here are applied after grpc's own,
                    // and a null value removes an option (Netty's AbstractBootstrap.option), so only TCP
                    // channels keep it.
                    .withOption(ChannelOption.SO_KEEPALIVE, null)
                    // A socket path is no host name; TLS (if any) checks the certificate against this name.
                    .overrideAuthority("localhost");
        } else {
            builder = NettyChannelBuilder.forAddress(address.host(), address.port());
        }
        // The sidecar keeps every answer within its listen.max-message-bytes (a Load defers what does not
        // fit); a second, smaller bound here (grpc-java's default is 4 MiB) would only fail answers the
        // sidecar is allowed to send.
        builder.maxInboundMessageSize(Integer.MAX_VALUE);
        if (endpoint.tls() == null) {
            builder.usePlaintext();
        } else {
            builder.negotiationType(NegotiationType.TLS).sslContext(sslContext(endpoint.tls()));
        }
        return new Shared(builder.build(), eventLoop);
    }

    private static io.grpc.netty.shaded.io.netty.handler.ssl.SslContext sslContext(SidecarSettings.Tls tls) {
        SslContextBuilder ssl = GrpcSslContexts.forClient();
        if (tls.caFile() != null) {
            ssl.trustManager(tls.caFile().toFile());
        }
        if (tls.certFile() != null) {
            ssl.keyManager(tls.certFile().toFile(), tls.keyFile().toFile());
        }
        try {
            return ssl.build();
        } catch (SSLException e) {
            throw new IllegalArgumentException("Cannot build TLS context from " + SidecarSettings.TLS_CA_FILE + ", "
                    + SidecarSettings.TLS_CERT_FILE + ", " + SidecarSettings.TLS_KEY_FILE + ": " + e.getMessage(), e);
        }
    }
}

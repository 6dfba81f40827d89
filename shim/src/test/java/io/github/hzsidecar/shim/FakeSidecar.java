package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
import io.github.hzsidecar.proto.v1.DeleteRequest;
import io.github.hzsidecar.proto.v1.DeleteResponse;
import io.github.hzsidecar.proto.v1.Entry;
import io.github.hzsidecar.proto.v1.EntryResult;
import io.github.hzsidecar.proto.v1.EntryStatus;
import io.github.hzsidecar.proto.v1.KeyBatch;
import io.github.hzsidecar.proto.v1.LoadAllKeysRequest;
import io.github.hzsidecar.proto.v1.LoadRequest;
import io.github.hzsidecar.proto.v1.LoadResponse;
import io.github.hzsidecar.proto.v1.MapStoreGrpc;
import io.github.hzsidecar.proto.v1.Schema;
import io.github.hzsidecar.proto.v1.StoreRequest;
import io.github.hzsidecar.proto.v1.StoreResponse;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.StreamObserver;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/** A sidecar in memory: remembers values and schemas, records requests, and fails on demand. */
final class FakeSidecar extends MapStoreGrpc.MapStoreImplBase implements AutoCloseable {

    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    final Map<ByteString, ByteString> values = new ConcurrentHashMap<>();
    final Map<Long, Schema> schemas = new ConcurrentHashMap<>();
    final List<StoreRequest> stores = new CopyOnWriteArrayList<>();
    final List<LoadRequest> loads = new CopyOnWriteArrayList<>();
    final List<DeleteRequest> deletes = new CopyOnWriteArrayList<>();
    final List<String> authorizations = new CopyOnWriteArrayList<>();
    /** When set, decides each stored entry's result from its index; null: every entry is written. */
    volatile Function<Integer, EntryResult> storeResults;
    /** When set, every call fails with it. */
    volatile Status failure;
    /** Trailing metadata sent with {@link #failure}, or null. */
    volatile Metadata failureTrailers;
    /** Entries per Load answer; the keys of further entries found are deferred (as the sidecar does by size). */
    volatile int maxEntriesPerAnswer = Integer.MAX_VALUE;

    private Server server;
    private EventLoopGroup eventLoop;
    String address;

    static FakeSidecar onTcp() throws IOException {
        FakeSidecar sidecar = new FakeSidecar();
        sidecar.server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(ServerInterceptors.intercept(sidecar, sidecar.new Recorder()))
                .build().start();
        int port = ((InetSocketAddress) sidecar.server.getListenSockets().get(0)).getPort();
        sidecar.address = "127.0.0.1:" + port;
        return sidecar;
    }

    static FakeSidecar onUnixSocket(Path socket) throws IOException {
        FakeSidecar sidecar = new FakeSidecar();
        sidecar.eventLoop = new EpollEventLoopGroup(1);
        sidecar.server = NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .channelType(EpollServerDomainSocketChannel.class)
                .bossEventLoopGroup(sidecar.eventLoop)
                .workerEventLoopGroup(sidecar.eventLoop)
                .addService(ServerInterceptors.intercept(sidecar, sidecar.new Recorder()))
                .build().start();
        sidecar.address = "unix://" + socket;
        return sidecar;
    }

    @Override
    public void close() throws InterruptedException {
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        if (eventLoop != null) {
            eventLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    @Override
    public void store(StoreRequest request, StreamObserver<StoreResponse> response) {
        stores.add(request);
        if (fail(response)) {
            return;
        }
        for (Schema schema : request.getSchemasList()) {
            schemas.put(schema.getSchemaId(), schema);
        }
        StoreResponse.Builder answer = StoreResponse.newBuilder();
        for (int i = 0; i < request.getEntriesCount(); i++) {
            EntryResult result = storeResults == null
                    ? EntryResult.newBuilder().setStatus(EntryStatus.ENTRY_STATUS_WRITTEN).build()
                    : storeResults.apply(i);
            if (result.getStatus() == EntryStatus.ENTRY_STATUS_WRITTEN) {
                Entry entry = request.getEntries(i);
                values.put(entry.getKey(), entry.getValue());
            }
            answer.addResults(result);
        }
        response.onNext(answer.build());
        response.onCompleted();
    }

    @Override
    public void delete(DeleteRequest request, StreamObserver<DeleteResponse> response) {
        deletes.add(request);
        if (fail(response)) {
            return;
        }
        long deleted = request.getKeysList().stream().filter(key -> values.remove(key) != null).count();
        response.onNext(DeleteResponse.newBuilder().setDeleted(deleted).build());
        response.onCompleted();
    }

    @Override
    public void load(LoadRequest request, StreamObserver<LoadResponse> response) {
        loads.add(request);
        if (fail(response)) {
            return;
        }
        // Like the real sidecar: every stored schema goes back (a superset of what the values use is fine).
        LoadResponse.Builder answer = LoadResponse.newBuilder().addAllSchemas(schemas.values());
        for (ByteString key : request.getKeysList()) {
            ByteString value = values.get(key);
            if (value == null) {
                continue;
            }
            if (answer.getEntriesCount() < maxEntriesPerAnswer) {
                answer.addEntries(Entry.newBuilder().setKey(key).setValue(value));
            } else {
                answer.addDeferredKeys(key);
            }
        }
        response.onNext(answer.build());
        response.onCompleted();
    }

    @Override
    public void loadAllKeys(LoadAllKeysRequest request, StreamObserver<KeyBatch> response) {
        if (fail(response)) {
            return;
        }
        int batchSize = request.getBatchSize() == 0 ? 2 : request.getBatchSize();
        List<ByteString> keys = new ArrayList<>(values.keySet());
        for (int i = 0; i < keys.size(); i += batchSize) {
            response.onNext(KeyBatch.newBuilder()
                    .addAllKeys(keys.subList(i, Math.min(keys.size(), i + batchSize))).build());
        }
        response.onCompleted();
    }

    private boolean fail(StreamObserver<?> response) {
        Status status = failure;
        if (status == null) {
            return false;
        }
        response.onError(status.asRuntimeException(failureTrailers));
        return true;
    }

    private final class Recorder implements ServerInterceptor {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(
                ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            String authorization = headers.get(AUTHORIZATION);
            if (authorization != null) {
                authorizations.add(authorization);
            }
            return next.startCall(call, headers);
        }
    }
}

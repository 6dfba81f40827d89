package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
import io.github.hzsidecar.proto.v1.Call;
import io.github.hzsidecar.proto.v1.CallStatus;
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
import io.github.hzsidecar.proto.v1.Reply;
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
import io.grpc.StatusRuntimeException;
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
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A sidecar in memory: remembers values and schemas, records requests, and fails on demand. Serves the unary
 * RPCs and the {@code Calls} stream with the same logic; the stream answers its calls concurrently (on a pool,
 * in completion order, as the sidecar does).
 */
final class FakeSidecar extends MapStoreGrpc.MapStoreImplBase implements AutoCloseable {

    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    final Map<ByteString, ByteString> values = new ConcurrentHashMap<>();
    final Map<Long, Schema> schemas = new ConcurrentHashMap<>();
    final List<StoreRequest> stores = new CopyOnWriteArrayList<>();
    final List<LoadRequest> loads = new CopyOnWriteArrayList<>();
    final List<DeleteRequest> deletes = new CopyOnWriteArrayList<>();
    final List<String> authorizations = new CopyOnWriteArrayList<>();
    /** The {@code authorization} metadata of each {@code Calls} stream opened (null: none). */
    final List<String> streamAuthorizations = new CopyOnWriteArrayList<>();
    /** The unary RPCs served ("store", "delete", "load"); calls on the stream are not in it. */
    final List<String> unaryCalls = new CopyOnWriteArrayList<>();
    /** Every Store, Delete and Load {@link Call} received on a stream (trace context, cluster size, deadline). */
    final List<Call> calls = new CopyOnWriteArrayList<>();
    /** The ids of the {@code Cancel}s received. */
    final BlockingQueue<Long> cancels = new LinkedBlockingQueue<>();
    /** With {@link #holdReplies}: the calls received and left unanswered. */
    final BlockingQueue<Call> held = new LinkedBlockingQueue<>();
    /** {@code Calls} streams opened, and ended by the shim (its half-close). */
    final AtomicInteger streamsOpened = new AtomicInteger();
    final AtomicInteger streamsCompletedByShim = new AtomicInteger();
    /** When set, a {@code Calls} stream is refused UNIMPLEMENTED, as by a sidecar older than the stream. */
    volatile boolean callsUnimplemented;
    /** When set, calls received on a stream are put in {@link #held}, not answered. */
    volatile boolean holdReplies;
    /** When set, decides the reply to each call on a stream (null: none), instead of the logic below. */
    volatile Function<Call, Reply> replies;
    /** When set, decides each stored entry's result from its index; null: every entry is written. */
    volatile Function<Integer, EntryResult> storeResults;
    /** When set, every call fails with it. */
    volatile Status failure;
    /** Trailing metadata sent with {@link #failure}, or null. */
    volatile Metadata failureTrailers;
    /** Entries per Load answer; the keys of further entries found are deferred (as the sidecar does by size). */
    volatile int maxEntriesPerAnswer = Integer.MAX_VALUE;

    private final Set<CallsStream> openStreams = ConcurrentHashMap.newKeySet();
    private final ExecutorService workers = Executors.newCachedThreadPool(runnable -> {
        Thread thread = new Thread(runnable, "fake-sidecar-call");
        thread.setDaemon(true);
        return thread;
    });
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
        workers.shutdownNow();
        if (eventLoop != null) {
            eventLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    @Override
    public void store(StoreRequest request, StreamObserver<StoreResponse> response) {
        unaryCalls.add("store");
        answer(response, () -> store(request));
    }

    @Override
    public void delete(DeleteRequest request, StreamObserver<DeleteResponse> response) {
        unaryCalls.add("delete");
        answer(response, () -> delete(request));
    }

    @Override
    public void load(LoadRequest request, StreamObserver<LoadResponse> response) {
        unaryCalls.add("load");
        answer(response, () -> load(request));
    }

    private static <T> void answer(StreamObserver<T> response, Answer<T> answer) {
        T result;
        try {
            result = answer.get();
        } catch (StatusRuntimeException e) {
            response.onError(e);
            return;
        }
        response.onNext(result);
        response.onCompleted();
    }

    @FunctionalInterface
    private interface Answer<T> {
        T get();
    }

    // ---- what the unary RPCs and the stream's calls share; a failure is thrown ----

    private StoreResponse store(StoreRequest request) {
        stores.add(request);
        failIfAsked();
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
        return answer.build();
    }

    private DeleteResponse delete(DeleteRequest request) {
        deletes.add(request);
        failIfAsked();
        long deleted = request.getKeysList().stream().filter(key -> values.remove(key) != null).count();
        return DeleteResponse.newBuilder().setDeleted(deleted).build();
    }

    private LoadResponse load(LoadRequest request) {
        loads.add(request);
        failIfAsked();
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
        return answer.build();
    }

    private void failIfAsked() {
        Status status = failure;
        if (status != null) {
            throw status.asRuntimeException(failureTrailers);
        }
    }

    // ---- the Calls stream ----

    @Override
    public StreamObserver<Call> calls(StreamObserver<Reply> responses) {
        streamsOpened.incrementAndGet();
        if (callsUnimplemented) {
            responses.onError(Status.UNIMPLEMENTED
                    .withDescription("Method not found: hzsidecar.v1.MapStore/Calls").asRuntimeException());
            return new StreamObserver<>() {
                @Override
                public void onNext(Call call) {
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                }
            };
        }
        CallsStream stream = new CallsStream(responses);
        openStreams.add(stream);
        return stream;
    }

    /** Breaks every open {@code Calls} stream with {@code status}, as a sidecar or network failure would. */
    void breakStreams(Status status) {
        for (CallsStream stream : openStreams) {
            stream.end(status);
        }
    }

    /** Sends {@code reply} on every open {@code Calls} stream (to answer {@link #held} calls, or not). */
    void reply(Reply reply) {
        for (CallsStream stream : openStreams) {
            stream.send(reply);
        }
    }

    /** Ends every open {@code Calls} stream normally, as a sidecar shutting down does. */
    void completeStreams() {
        for (CallsStream stream : openStreams) {
            stream.end(null);
        }
    }

    /** The reply the sidecar gives {@code call}: the same logic as the unary RPC, its failure a CallStatus. */
    Reply answer(Call call) {
        Reply.Builder reply = Reply.newBuilder().setId(call.getId());
        try {
            switch (call.getRequestCase()) {
                case STORE -> reply.setStore(store(call.getStore()));
                case DELETE -> reply.setDelete(delete(call.getDelete()));
                case LOAD -> reply.setLoad(load(call.getLoad()));
                default -> throw Status.INVALID_ARGUMENT.withDescription("a call without a request")
                        .asRuntimeException();
            }
        } catch (StatusRuntimeException e) {
            reply.setStatus(callStatus(e));
        }
        return reply.build();
    }

    private static CallStatus callStatus(StatusRuntimeException e) {
        CallStatus.Builder status = CallStatus.newBuilder().setCode(e.getStatus().getCode().value());
        if (e.getStatus().getDescription() != null) {
            status.setMessage(e.getStatus().getDescription());
        }
        Metadata trailers = e.getTrailers();
        if (trailers != null) {
            for (String key : trailers.keys()) {
                if (!key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                    status.putTrailers(key, trailers.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER)));
                }
            }
        }
        return status.build();
    }

    private final class CallsStream implements StreamObserver<Call> {
        private final StreamObserver<Reply> responses;
        private boolean ended;

        CallsStream(StreamObserver<Reply> responses) {
            this.responses = responses;
        }

        @Override
        public void onNext(Call call) {
            if (call.getRequestCase() == Call.RequestCase.CANCEL) {
                cancels.add(call.getId());
                return;
            }
            calls.add(call);
            if (holdReplies) {
                held.add(call);
                return;
            }
            workers.execute(() -> {
                Function<Call, Reply> custom = replies;
                Reply reply = custom != null ? custom.apply(call) : answer(call);
                if (reply != null) {
                    send(reply);
                }
            });
        }

        private synchronized void send(Reply reply) {
            if (!ended) {
                responses.onNext(reply);
            }
        }

        /** Ends the stream: with {@code status}, or normally when null. */
        synchronized void end(Status status) {
            openStreams.remove(this);
            if (ended) {
                return;
            }
            ended = true;
            if (status == null) {
                responses.onCompleted();
            } else {
                responses.onError(status.asRuntimeException());
            }
        }

        @Override
        public void onError(Throwable t) {
            synchronized (this) {
                ended = true;
            }
            openStreams.remove(this);
        }

        @Override
        public void onCompleted() {
            streamsCompletedByShim.incrementAndGet();
            end(null);
        }
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

    /** Fails {@code response} with {@link #failure}, if set. */
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
            if (call.getMethodDescriptor().getBareMethodName().equals("Calls")) {
                streamAuthorizations.add(authorization);
            }
            return next.startCall(call, headers);
        }
    }
}

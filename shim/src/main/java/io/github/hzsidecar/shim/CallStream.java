package io.github.hzsidecar.shim;

import com.hazelcast.logging.ILogger;
import com.hazelcast.logging.Logger;
import io.github.hzsidecar.proto.v1.Call;
import io.github.hzsidecar.proto.v1.CallStatus;
import io.github.hzsidecar.proto.v1.Cancel;
import io.github.hzsidecar.proto.v1.DeleteRequest;
import io.github.hzsidecar.proto.v1.DeleteResponse;
import io.github.hzsidecar.proto.v1.LoadRequest;
import io.github.hzsidecar.proto.v1.LoadResponse;
import io.github.hzsidecar.proto.v1.MapStoreGrpc;
import io.github.hzsidecar.proto.v1.Reply;
import io.github.hzsidecar.proto.v1.StoreRequest;
import io.github.hzsidecar.proto.v1.StoreResponse;
import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Store, Delete and Load calls of every map that shares one channel and one bearer token, multiplexed on
 * one long-lived {@code Calls} stream (the proto's {@code rpc Calls}): a message on an open stream costs the
 * sidecar a fraction of a new unary RPC.
 *
 * <p>Each call gets an id, is registered as pending before it is sent, and its thread waits for the
 * {@link Reply} with that id up to its deadline. A reply is exactly what the unary RPC would have answered:
 * a response message, or a {@link CallStatus} that becomes the same {@link StatusRuntimeException} (trailers
 * included), so {@link SidecarException#of(StatusRuntimeException, String, String, int)} maps both alike.
 *
 * <ul>
 * <li>Deadline: a call without a reply in time is withdrawn (a {@code Cancel} is sent, best effort) and fails
 *     with DEADLINE_EXCEEDED; an interrupted wait is withdrawn too and fails with CANCELLED. A late reply for a
 *     withdrawn id is ignored.</li>
 * <li>Reconnect: when the stream breaks (or the sidecar closes it), every call it carried that has no reply
 *     fails with the stream's status (mostly UNAVAILABLE: write-behind retries), and the next call opens a new
 *     stream. Each stream is its own generation with its own pending calls: a late callback of a broken
 *     stream can only touch its own calls, never those of the stream that replaced it.</li>
 * <li>Fallback: a sidecar without {@code Calls} (older than the stream) answers the stream UNIMPLEMENTED; from
 *     then on every method here returns null, telling the caller to use the unary RPC instead, and the calls
 *     that were waiting on that stream do the same (the sidecar ran none of them).</li>
 * </ul>
 *
 * <p>Nothing here is per call beyond the messages, the id and one future: no interceptor, no stub, no gRPC
 * {@link Context}. The trace context and the member's cluster size travel in the {@link Call}; the bearer
 * token is the stream's metadata. Thread-safe: a {@link StreamObserver} is not, so sends hold a lock.
 */
final class CallStream implements AutoCloseable {

    private static final ILogger LOGGER = Logger.getLogger(CallStream.class);
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    /** The largest {@code deadline_ms} the wire can carry (uint32). */
    private static final long MAX_WIRE_DEADLINE_MS = 0xFFFF_FFFFL;

    private final MapStoreGrpc.MapStoreStub stub;
    private final AtomicLong ids = new AtomicLong();
    /** Guards {@link #current}, {@link #closed} and every send on a stream. */
    private final Object lock = new Object();
    private Stream current;
    private boolean closed;
    /** Set once the sidecar answered the stream UNIMPLEMENTED: every call goes unary from then on. */
    private volatile boolean unsupported;

    /**
     * @param channel the shared channel of the sidecar endpoint
     * @param token   the bearer token sent as the stream's metadata, or null
     */
    CallStream(Channel channel, String token) {
        MapStoreGrpc.MapStoreStub stub = MapStoreGrpc.newStub(channel);
        if (token != null) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + token);
            stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        this.stub = stub;
    }

    /** False once the sidecar turned out not to serve {@code Calls}: the caller uses the unary RPCs. */
    boolean supported() {
        return !unsupported;
    }

    /** A Store over the stream; null when the sidecar has no stream (use the unary RPC). */
    StoreResponse store(StoreRequest request, String traceparent, int clusterSize, long deadlineMs) {
        Reply reply = call(Call.newBuilder().setStore(request), traceparent, clusterSize, deadlineMs);
        if (reply == null) {
            return null;
        }
        if (reply.getResultCase() != Reply.ResultCase.STORE) {
            throw mismatch(reply, Call.RequestCase.STORE);
        }
        return reply.getStore();
    }

    /** A Delete over the stream; null when the sidecar has no stream (use the unary RPC). */
    DeleteResponse delete(DeleteRequest request, String traceparent, int clusterSize, long deadlineMs) {
        Reply reply = call(Call.newBuilder().setDelete(request), traceparent, clusterSize, deadlineMs);
        if (reply == null) {
            return null;
        }
        if (reply.getResultCase() != Reply.ResultCase.DELETE) {
            throw mismatch(reply, Call.RequestCase.DELETE);
        }
        return reply.getDelete();
    }

    /** A Load over the stream; null when the sidecar has no stream (use the unary RPC). */
    LoadResponse load(LoadRequest request, String traceparent, int clusterSize, long deadlineMs) {
        Reply reply = call(Call.newBuilder().setLoad(request), traceparent, clusterSize, deadlineMs);
        if (reply == null) {
            return null;
        }
        if (reply.getResultCase() != Reply.ResultCase.LOAD) {
            throw mismatch(reply, Call.RequestCase.LOAD);
        }
        return reply.getLoad();
    }

    private static StatusRuntimeException mismatch(Reply reply, Call.RequestCase asked) {
        return Status.INTERNAL.withDescription("the sidecar answered a " + asked + " call (id " + reply.getId()
                + ") with " + reply.getResultCase() + " on the call stream").asRuntimeException();
    }

    /**
     * Sends {@code call} and waits for its reply: the reply's result, or null when the sidecar does not serve
     * the stream. A failure is thrown as the {@link StatusRuntimeException} the unary RPC would have thrown.
     */
    private Reply call(Call.Builder call, String traceparent, int clusterSize, long deadlineMs) {
        if (unsupported) {
            return null;
        }
        long id = ids.incrementAndGet();
        Call message = call.setId(id)
                .setDeadlineMs((int) Math.min(deadlineMs, MAX_WIRE_DEADLINE_MS))
                .setTraceparent(traceparent)
                .setClusterSize(Math.max(clusterSize, 0))
                .build();
        CompletableFuture<Reply> reply = new CompletableFuture<>();
        Stream stream;
        synchronized (lock) {
            if (closed) {
                throw Status.UNAVAILABLE.withDescription("the shim's call stream to the sidecar is closed"
                        + " (the map store was destroyed)").asRuntimeException();
            }
            if (unsupported) {
                return null;
            }
            stream = current != null ? current : open();
            if (stream.ended != null) {
                // Failed as it opened (the callback ran on this thread): nothing was sent.
                if (unsupported) {
                    return null;
                }
                throw stream.ended.asRuntimeException(stream.endedTrailers);
            }
            // Registered before it is sent: the reply may arrive before onNext returns.
            stream.pending.put(id, reply);
            try {
                stream.requests.onNext(message);
            } catch (RuntimeException e) {
                stream.pending.remove(id);
                throw Status.UNAVAILABLE.withDescription("cannot send on the call stream to the sidecar")
                        .withCause(e).asRuntimeException();
            }
        }
        return await(stream, id, reply, deadlineMs);
    }

    private Reply await(Stream stream, long id, CompletableFuture<Reply> reply, long deadlineMs) {
        Reply answer;
        try {
            answer = reply.get(deadlineMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            if (!stream.pending.remove(id, reply)) {
                return settled(reply);  // answered or failed meanwhile
            }
            withdraw(stream, id);
            throw Status.DEADLINE_EXCEEDED.withDescription("no answer from the sidecar within the call deadline of "
                    + deadlineMs + " ms (" + SidecarSettings.DEADLINE_MS + ")").asRuntimeException();
        } catch (InterruptedException e) {
            boolean withdrawn = stream.pending.remove(id, reply);
            if (withdrawn) {
                withdraw(stream, id);
            }
            Thread.currentThread().interrupt();
            if (!withdrawn) {
                return settled(reply);  // answered or failed meanwhile
            }
            throw Status.CANCELLED.withDescription("interrupted while waiting for the sidecar's answer")
                    .withCause(e).asRuntimeException();
        } catch (ExecutionException e) {
            throw rethrown(e.getCause());
        }
        return answer == null ? null : result(answer);
    }

    /** The outcome of a call that is being completed by another thread right now. */
    private static Reply settled(CompletableFuture<Reply> reply) {
        Reply answer;
        try {
            answer = reply.join();
        } catch (CompletionException e) {
            throw rethrown(e.getCause());
        }
        return answer == null ? null : result(answer);
    }

    /** A failure shared by every call of a stream, thrown anew on the calling thread (its own stack). */
    private static StatusRuntimeException rethrown(Throwable failure) {
        return Status.fromThrowable(failure).asRuntimeException(Status.trailersFromThrowable(failure));
    }

    /** The reply itself, or its {@link CallStatus} thrown as the unary RPC's exception. */
    private static Reply result(Reply reply) {
        if (reply.getResultCase() == Reply.ResultCase.STATUS) {
            throw toException(reply.getStatus());
        }
        if (reply.getResultCase() == Reply.ResultCase.RESULT_NOT_SET) {
            throw Status.INTERNAL.withDescription("the sidecar answered call " + reply.getId()
                    + " on the call stream with an empty reply").asRuntimeException();
        }
        return reply;
    }

    /** What the unary RPC would have thrown: the status code, its message and its trailing metadata. */
    static StatusRuntimeException toException(CallStatus callStatus) {
        Status status = callStatus.getCode() == Status.Code.OK.value()
                ? Status.INTERNAL.withDescription("the sidecar answered a failed call with status OK: "
                        + callStatus.getMessage())
                : Status.fromCodeValue(callStatus.getCode()).withDescription(
                        callStatus.getMessage().isEmpty() ? null : callStatus.getMessage());
        Metadata trailers = null;
        if (callStatus.getTrailersCount() > 0) {
            trailers = new Metadata();
            for (Map.Entry<String, String> trailer : callStatus.getTrailersMap().entrySet()) {
                try {
                    trailers.put(Metadata.Key.of(trailer.getKey(), Metadata.ASCII_STRING_MARSHALLER),
                            trailer.getValue());
                } catch (IllegalArgumentException e) {
                    // Not an ASCII metadata key (e.g. a "-bin" one): the unary RPC could not have sent it as text.
                }
            }
        }
        return status.asRuntimeException(trailers);
    }

    /** Withdraws a call the shim gave up on, best effort: its reply, if any, is ignored anyway. */
    private void withdraw(Stream stream, long id) {
        synchronized (lock) {
            if (stream.ended != null || current != stream) {
                return;
            }
            try {
                stream.requests.onNext(Call.newBuilder().setId(id).setCancel(Cancel.getDefaultInstance()).build());
            } catch (RuntimeException e) {
                // The stream is going away; its end fails or drops everything it carried.
            }
        }
    }

    /** Opens a stream (the caller holds the lock); it becomes {@link #current}. */
    private Stream open() {
        Stream stream = new Stream();
        current = stream;
        // The stream outlives the call that opens it: it must not be bound to that thread's gRPC context,
        // whose cancellation would cancel the stream.
        Context previous = Context.ROOT.attach();
        try {
            stream.requests = stub.calls(stream);
        } finally {
            Context.ROOT.detach(previous);
        }
        return stream;
    }

    /**
     * Completes the stream (the sidecar then finishes and ends it); calls still waiting fail with UNAVAILABLE
     * and later calls are refused. For the last release of the shared channel, before it shuts down.
     */
    @Override
    public void close() {
        Stream stream;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            stream = current;
            current = null;
            if (stream == null) {
                return;
            }
            stream.ended = Status.UNAVAILABLE.withDescription("the shim closed its call stream to the sidecar"
                    + " (the map store was destroyed)");
            try {
                stream.requests.onCompleted();
            } catch (RuntimeException e) {
                // Already ended.
            }
        }
        stream.failPending(stream.ended.asRuntimeException());
    }

    /** One stream: its request side, the calls it carries that await a reply, and how it ended. */
    private final class Stream implements StreamObserver<Reply> {
        /** Calls sent on this stream that await their reply, by id. */
        final Map<Long, CompletableFuture<Reply>> pending = new ConcurrentHashMap<>();
        /** Set under the lock. */
        StreamObserver<Call> requests;
        /** Why the stream ended, once it did (under the lock); no call is sent on it from then on. */
        Status ended;
        Metadata endedTrailers;

        @Override
        public void onNext(Reply reply) {
            CompletableFuture<Reply> call = pending.remove(reply.getId());
            if (call != null) {
                call.complete(reply);
            }
            // Else a call withdrawn (deadline, interrupt): its late reply has nobody to go to.
        }

        @Override
        public void onError(Throwable t) {
            Status status = Status.fromThrowable(t);
            boolean fallback = false;
            synchronized (lock) {
                if (ended != null) {
                    return;  // closed by the shim already
                }
                ended = status;
                endedTrailers = Status.trailersFromThrowable(t);
                if (current == this) {
                    current = null;
                }
                if (status.getCode() == Status.Code.UNIMPLEMENTED && !closed) {
                    fallback = true;
                    if (!unsupported) {
                        unsupported = true;
                        LOGGER.info("The hz-sidecar does not serve the call stream (hzsidecar.v1.MapStore/Calls:"
                                + " " + status.getDescription() + "); calls go as unary RPCs on this channel."
                                + " Upgrade the sidecar for the cheaper stream, or set sidecar.transport=unary.");
                    }
                }
            }
            if (fallback) {
                // The sidecar ran none of them: each caller sends its call again as a unary RPC.
                for (Long id : pending.keySet()) {
                    CompletableFuture<Reply> call = pending.remove(id);
                    if (call != null) {
                        call.complete(null);
                    }
                }
            } else {
                failPending(t);
            }
        }

        @Override
        public void onCompleted() {
            Status status = Status.UNAVAILABLE.withDescription("the sidecar closed the call stream");
            synchronized (lock) {
                if (ended != null) {
                    return;
                }
                ended = status;
                if (current == this) {
                    current = null;
                }
            }
            failPending(status.asRuntimeException());
        }

        /** Fails every call of this stream still waiting (their callers rethrow it on their own threads). */
        void failPending(Throwable failure) {
            for (Long id : pending.keySet()) {
                CompletableFuture<Reply> call = pending.remove(id);
                if (call != null) {
                    call.completeExceptionally(failure);
                }
            }
        }
    }
}

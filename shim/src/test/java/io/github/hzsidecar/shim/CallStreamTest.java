package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
import io.github.hzsidecar.proto.v1.Call;
import io.github.hzsidecar.proto.v1.CallStatus;
import io.github.hzsidecar.proto.v1.DeleteRequest;
import io.github.hzsidecar.proto.v1.DeleteResponse;
import io.github.hzsidecar.proto.v1.Entry;
import io.github.hzsidecar.proto.v1.LoadRequest;
import io.github.hzsidecar.proto.v1.LoadResponse;
import io.github.hzsidecar.proto.v1.Reply;
import io.github.hzsidecar.proto.v1.StoreRequest;
import io.github.hzsidecar.proto.v1.StoreResponse;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link CallStream} on its own, against a fake sidecar of its own (one stream at a time). */
class CallStreamTest {

    private static final long DEADLINE_MS = 10_000;
    private static final StoreRequest STORE = StoreRequest.newBuilder().setMapName("m")
            .addEntries(Entry.newBuilder().setKey(ByteString.copyFromUtf8("k")).setValue(ByteString.copyFromUtf8("v")))
            .build();
    private static final String TRACEPARENT = TraceParent.random().header();

    private FakeSidecar sidecar;
    private ManagedChannel channel;
    private CallStream calls;
    private ExecutorService threads;
    /** The call of the last {@link #heldStore}, as the sidecar received it. */
    private Call held;

    @BeforeEach
    void start() throws Exception {
        sidecar = FakeSidecar.onTcp();
        channel = NettyChannelBuilder.forTarget(sidecar.address).usePlaintext().build();
        calls = new CallStream(channel, null);
        threads = Executors.newCachedThreadPool();
    }

    @AfterEach
    void stop() throws Exception {
        threads.shutdownNow();
        calls.close();
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        sidecar.close();
    }

    /** Sends a store on another thread once the sidecar holds its replies; returns it once the sidecar has it. */
    private Future<StoreResponse> heldStore() throws InterruptedException {
        sidecar.holdReplies = true;
        Future<StoreResponse> call = threads.submit(() -> calls.store(STORE, TRACEPARENT, 3, DEADLINE_MS));
        held = sidecar.held.poll(10, TimeUnit.SECONDS);
        assertNotNull(held, "the call reached the sidecar");
        return call;
    }

    private static StatusRuntimeException failure(Future<?> call) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> call.get(10, TimeUnit.SECONDS));
        return assertInstanceOf(StatusRuntimeException.class, e.getCause());
    }

    @Test
    void answersEachKindOfCallAndSendsTheCallsContext() {
        assertEquals(1, calls.store(STORE, TRACEPARENT, 3, DEADLINE_MS).getResultsCount());
        LoadResponse loaded = calls.load(LoadRequest.newBuilder().setMapName("m")
                .addKeys(ByteString.copyFromUtf8("k")).build(), TRACEPARENT, 3, DEADLINE_MS);
        assertEquals(ByteString.copyFromUtf8("v"), loaded.getEntries(0).getValue());
        DeleteResponse deleted = calls.delete(DeleteRequest.newBuilder().setMapName("m")
                .addKeys(ByteString.copyFromUtf8("k")).build(), TRACEPARENT, 3, DEADLINE_MS);
        assertEquals(1, deleted.getDeleted());
        assertEquals(1, sidecar.streamsOpened.get());
        assertEquals(3, sidecar.calls.size());
        for (Call call : sidecar.calls) {
            assertEquals(TRACEPARENT, call.getTraceparent());
            assertEquals(3, call.getClusterSize());
            assertEquals(DEADLINE_MS, call.getDeadlineMs());
        }
        assertEquals(3, sidecar.calls.stream().map(Call::getId).distinct().count(), "ids are unique");
    }

    @Test
    void deadlineBeyondTheWiresRangeIsSentAsItsLargestValue() {
        calls.store(STORE, TRACEPARENT, 1, Long.MAX_VALUE);
        assertEquals(0xFFFF_FFFFL, Integer.toUnsignedLong(sidecar.calls.get(0).getDeadlineMs()));
    }

    @Test
    void callStatusBecomesTheUnaryRpcsExceptionWithItsTrailers() {
        sidecar.replies = call -> Reply.newBuilder().setId(call.getId()).setStatus(CallStatus.newBuilder()
                .setCode(Status.Code.RESOURCE_EXHAUSTED.value())
                .setMessage("its value is 100012 bytes")
                .putTrailers("hz-sidecar-entry-too-large", "100037")
                .putTrailers("Not A Valid Key!", "ignored")).build();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
        assertEquals("its value is 100012 bytes", e.getStatus().getDescription());
        assertEquals("100037", e.getTrailers().get(SidecarException.ENTRY_TOO_LARGE));
        SidecarException mapped = SidecarException.of(e, "m", "load", 1);
        assertInstanceOf(SidecarException.Rejected.class, mapped);
    }

    @Test
    void replyOfAnotherKindOrEmptyIsAnInternalError() {
        sidecar.replies = call -> Reply.newBuilder().setId(call.getId())
                .setLoad(LoadResponse.getDefaultInstance()).build();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS));
        assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("STORE"), e.getStatus().getDescription());

        sidecar.replies = call -> Reply.newBuilder().setId(call.getId()).build();
        assertEquals(Status.Code.INTERNAL, assertThrows(StatusRuntimeException.class,
                () -> calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS)).getStatus().getCode());
        assertEquals(1, sidecar.streamsOpened.get(), "neither breaks the stream");
    }

    @Test
    void repliesForUnknownIdsAreIgnored() throws Exception {
        Future<StoreResponse> call = heldStore();
        sidecar.reply(Reply.newBuilder().setId(held.getId() + 1000).setStore(StoreResponse.getDefaultInstance())
                .build());
        sidecar.reply(sidecar.answer(held));
        assertEquals(1, call.get(10, TimeUnit.SECONDS).getResultsCount());
        assertEquals(1, sidecar.streamsOpened.get());
    }

    @Test
    void sidecarClosingTheStreamFailsPendingCallsUnavailableAndTheNextCallReconnects() throws Exception {
        Future<StoreResponse> call = heldStore();
        sidecar.completeStreams();
        StatusRuntimeException e = failure(call);
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
        assertEquals("the sidecar closed the call stream", e.getStatus().getDescription());

        sidecar.holdReplies = false;
        assertEquals(1, calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS).getResultsCount());
        assertEquals(2, sidecar.streamsOpened.get());
    }

    @Test
    void brokenStreamFailsEveryPendingCallWithItsStatus() throws Exception {
        Future<StoreResponse> first = heldStore();
        Future<StoreResponse> second = heldStore();
        sidecar.breakStreams(Status.UNAVAILABLE.withDescription("gone"));
        for (Future<StoreResponse> call : List.of(first, second)) {
            StatusRuntimeException e = failure(call);
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            assertEquals("gone", e.getStatus().getDescription());
        }
        sidecar.holdReplies = false;
        calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS);
        assertEquals(2, sidecar.streamsOpened.get());
    }

    @Test
    void sidecarThatIsDownFailsTheCallUnavailable() throws Exception {
        sidecar.close();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
        assertTrue(calls.supported());
    }

    @Test
    void sidecarWithoutTheStreamMakesEveryCallAskForTheUnaryRpc() throws Exception {
        sidecar.callsUnimplemented = true;
        assertNull(calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS));
        assertFalse(calls.supported());
        assertNull(calls.load(LoadRequest.getDefaultInstance(), TRACEPARENT, 1, DEADLINE_MS));
        assertEquals(1, sidecar.streamsOpened.get());
    }

    @Test
    void closeCompletesTheStreamFailsPendingCallsAndRefusesLaterOnes() throws Exception {
        Future<StoreResponse> call = heldStore();
        calls.close();
        StatusRuntimeException e = failure(call);
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
        channel.shutdown();
        assertTrue(channel.awaitTermination(10, TimeUnit.SECONDS), "the stream ended: the sidecar completed it");
        assertEquals(1, sidecar.streamsCompletedByShim.get());
        assertEquals(Status.Code.UNAVAILABLE, assertThrows(StatusRuntimeException.class,
                () -> calls.store(STORE, TRACEPARENT, 1, DEADLINE_MS)).getStatus().getCode());
    }

    @Test
    void sharedChannelKeepsOneStreamPerTokenAndItsLastReleaseCompletesThem() throws Exception {
        SidecarChannels.Endpoint endpoint = new SidecarChannels.Endpoint(SidecarAddress.parse(sidecar.address), null);
        SidecarChannels.acquire(endpoint);
        SidecarChannels.acquire(endpoint);
        try {
            CallStream plain = SidecarChannels.calls(endpoint, null);
            CallStream tokened = SidecarChannels.calls(endpoint, "t");
            assertSame(plain, SidecarChannels.calls(endpoint, null));
            assertSame(tokened, SidecarChannels.calls(endpoint, "t"));
            assertNotSame(plain, tokened);
            assertNotSame(tokened, SidecarChannels.calls(endpoint, "u"));

            tokened.store(STORE, TRACEPARENT, 1, DEADLINE_MS);
            assertEquals("Bearer t", sidecar.streamAuthorizations.get(0));
            sidecar.holdReplies = true;
            Future<StoreResponse> call = threads.submit(() -> tokened.store(STORE, TRACEPARENT, 1, DEADLINE_MS));
            assertNotNull(sidecar.held.poll(10, TimeUnit.SECONDS));

            SidecarChannels.release(endpoint);
            assertEquals(0, sidecar.streamsCompletedByShim.get(), "still referenced");
            SidecarChannels.release(endpoint);
            assertEquals(Status.Code.UNAVAILABLE, failure(call).getStatus().getCode());
            assertEquals(1, sidecar.streamsCompletedByShim.get(), "completed before the channel shut down");
        } finally {
            SidecarChannels.release(endpoint);  // (no-op once released)
        }
    }

    @Test
    void callStatusWithoutTrailersOrMessage() {
        StatusRuntimeException e = CallStream.toException(CallStatus.newBuilder()
                .setCode(Status.Code.UNAVAILABLE.value()).build());
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
        assertNull(e.getStatus().getDescription());
        Metadata trailers = e.getTrailers();
        assertTrue(trailers == null || trailers.keys().isEmpty());
        assertEquals(Status.Code.INTERNAL, CallStream.toException(CallStatus.getDefaultInstance()).getStatus().getCode());
    }
}

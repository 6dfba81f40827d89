package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
import com.hazelcast.config.Config;
import com.hazelcast.config.MapConfig;
import com.hazelcast.config.MapStoreConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.internal.serialization.impl.HeapData;
import com.hazelcast.map.IMap;
import com.hazelcast.nio.serialization.genericrecord.GenericRecord;
import com.hazelcast.nio.serialization.genericrecord.GenericRecordBuilder;
import com.hazelcast.spi.impl.SerializationServiceSupport;
import io.github.hzsidecar.proto.v1.Call;
import io.github.hzsidecar.proto.v1.Entry;
import io.github.hzsidecar.proto.v1.EntryResult;
import io.github.hzsidecar.proto.v1.EntryStatus;
import io.github.hzsidecar.proto.v1.LoadRequest;
import io.github.hzsidecar.proto.v1.Schema;
import io.github.hzsidecar.proto.v1.StoreRequest;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap;
import io.grpc.netty.shaded.io.netty.util.internal.logging.InternalLoggerFactory;
import io.grpc.netty.shaded.io.netty.util.internal.logging.JdkLoggerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shim inside a real Hazelcast 5.7 member, against a fake sidecar. */
class SidecarMapStoreMemberTest {

    private static final int COMPACT_TYPE_ID = -55;

    private static FakeSidecar sidecar;
    private static HazelcastInstance member;

    @BeforeAll
    static void start() throws Exception {
        sidecar = FakeSidecar.onTcp();
        member = startMember(sidecar.address);
    }

    @AfterAll
    static void stop() throws Exception {
        Hazelcast.shutdownAll();
        sidecar.close();
    }

    @BeforeEach
    void reset() {
        sidecar.failure = null;
        sidecar.failureTrailers = null;
        sidecar.storeResults = null;
        sidecar.maxEntriesPerAnswer = Integer.MAX_VALUE;
        sidecar.callsUnimplemented = false;
        sidecar.holdReplies = false;
        sidecar.replies = null;
        sidecar.held.clear();
        sidecar.cancels.clear();
    }

    static HazelcastInstance startMember(String sidecarAddress) {
        Config config = new Config();
        config.setClusterName("shim-test-" + UUID.randomUUID());
        config.getNetworkConfig().setPort(15701).setPortAutoIncrement(true);
        config.getNetworkConfig().getJoin().getMulticastConfig().setEnabled(false);
        config.getJetConfig().setEnabled(false);
        Properties properties = new Properties();
        properties.setProperty(SidecarSettings.ADDRESS, sidecarAddress);
        properties.setProperty(SidecarSettings.TOKEN, "s3cret");
        MapStoreConfig store = new MapStoreConfig()
                .setEnabled(true)
                .setFactoryClassName(SidecarMapStoreFactory.class.getName())
                .setWriteDelaySeconds(0)
                .setInitialLoadMode(MapStoreConfig.InitialLoadMode.LAZY)
                .setProperties(properties);
        config.addMapConfig(new MapConfig("persisted*").setMapStoreConfig(store));
        // Write-behind: only read by stores made directly here (directStore), never flushed.
        config.addMapConfig(new MapConfig("behind*").setMapStoreConfig(new MapStoreConfig(store)
                .setWriteDelaySeconds(5)));
        return Hazelcast.newHazelcastInstance(config);
    }

    static GenericRecord order(String id) {
        GenericRecord customer = GenericRecordBuilder.compact("Customer")
                .setString("name", "Ada").setInt32("tier", 3).build();
        GenericRecord[] lines = {
                GenericRecordBuilder.compact("Line").setString("sku", "A-1").setInt64("quantity", 2L).build(),
                GenericRecordBuilder.compact("Line").setString("sku", "B-2").setInt64("quantity", 5L).build(),
        };
        return GenericRecordBuilder.compact("Order")
                .setString("id", id)
                .setGenericRecord("customer", customer)
                .setArrayOfGenericRecord("lines", lines)
                .build();
    }

    private static Object toObject(Object data) {
        return ((SerializationServiceSupport) member).getSerializationService().toObject(data);
    }

    private static SidecarMapStore directStore(String address, String mapName, String... moreProperties) {
        SidecarMapStore store = new SidecarMapStore();
        Properties properties = SidecarSettingsTest.properties(SidecarSettings.ADDRESS, address,
                SidecarSettings.LOAD_ALL_KEYS_BATCH_SIZE, "2");
        properties.putAll(SidecarSettingsTest.properties(moreProperties));
        store.init(member, properties, mapName);
        return store;
    }

    private static EntryResult result(EntryStatus status, Status.Code code, String message) {
        return EntryResult.newBuilder().setStatus(status).setCode(code.value()).setMessage(message).build();
    }

    private static byte[] memberBytes(Object object) {
        return ((SerializationServiceSupport) member).getSerializationService().toData(object).toByteArray();
    }

    @Test
    void writeBehindStoreAllDropsRefusedEntriesAndThrowsOnlyForRetriableOnes() {
        SidecarMapStore store = directStore(sidecar.address, "behind-refused");
        try {
            sidecar.storeResults = i -> switch (i) {
                case 0 -> result(EntryStatus.ENTRY_STATUS_WRITTEN, Status.Code.OK, "");
                case 1 -> result(EntryStatus.ENTRY_STATUS_FAILED, Status.Code.INVALID_ARGUMENT, "cannot be decoded");
                default -> result(EntryStatus.ENTRY_STATUS_FAILED, Status.Code.UNAVAILABLE, "database is down");
            };
            Map<Object, Object> entries = new LinkedHashMap<>();
            entries.put("a", "1");
            entries.put("b", "2");
            entries.put("c", "3");
            assertInstanceOf(SidecarException.Unavailable.class,
                    assertThrows(SidecarException.class, () -> store.storeAll(entries)));
            assertEquals(Map.of("c", "3"), entries, "written and refused entries are finished");

            sidecar.storeResults = i -> result(EntryStatus.ENTRY_STATUS_FAILED, Status.Code.INVALID_ARGUMENT, "bad");
            Map<Object, Object> poison = new LinkedHashMap<>(Map.of("p", "1", "q", "2"));
            store.storeAll(poison);
            assertTrue(poison.isEmpty(), "nothing left for Hazelcast to retry");
            store.store("p", "1");
        } finally {
            store.destroy();
        }
    }

    @Test
    void writeBehindSingleStoreRefusedAsAWholeReturnsButABatchThrows() {
        SidecarMapStore store = directStore(sidecar.address, "behind-whole");
        try {
            sidecar.failure = Status.INVALID_ARGUMENT.withDescription("schema id does not match its fingerprint");
            store.store("k", "v");
            store.delete("k");
            Map<Object, Object> entries = new LinkedHashMap<>(Map.of("a", "1", "b", "2"));
            // Hazelcast retries a batch that throws entry by entry, which finds the refused one.
            assertInstanceOf(SidecarException.Rejected.class,
                    assertThrows(SidecarException.class, () -> store.storeAll(entries)));
            assertEquals(2, entries.size());
        } finally {
            store.destroy();
        }
    }

    @Test
    void writeThroughStoreOfARefusedEntryFailsTheCaller() {
        SidecarMapStore store = directStore(sidecar.address, "direct-refused");
        try {
            sidecar.storeResults = i -> result(EntryStatus.ENTRY_STATUS_FAILED, Status.Code.INVALID_ARGUMENT,
                    "cannot be decoded: nested deeper than 64 levels");
            SidecarException e = assertThrows(SidecarException.class, () -> store.store("k", "v"));
            assertInstanceOf(SidecarException.Rejected.class, e);
            assertTrue(e.getMessage().contains("nested deeper"), e.getMessage());
        } finally {
            store.destroy();
        }
    }

    @Test
    void loadAllAsksAgainForDeferredKeysUntilNoneIsLeft() {
        SidecarMapStore store = directStore(sidecar.address, "direct-deferred");
        try {
            Map<Object, Object> entries = new LinkedHashMap<>();
            for (int i = 0; i < 5; i++) {
                entries.put("deferred-" + i, i);
            }
            store.storeAll(new LinkedHashMap<>(entries));  // (storeAll empties the map it is given)
            sidecar.maxEntriesPerAnswer = 2;
            int loadsBefore = sidecar.loads.size();
            List<Object> keys = new ArrayList<>(entries.keySet());
            keys.add("nope");
            Map<Object, Object> loaded = store.loadAll(keys);
            Map<Object, Object> objects = new LinkedHashMap<>();
            loaded.forEach((key, value) -> objects.put(key, toObject(value)));
            assertEquals(entries, objects);
            assertEquals(loadsBefore + 3, sidecar.loads.size());
            assertEquals(1, sidecar.loads.get(sidecar.loads.size() - 1).getKeysCount());

            sidecar.maxEntriesPerAnswer = 0;
            assertThrows(IllegalStateException.class, () -> store.loadAll(keys), "an answer without progress");
        } finally {
            store.destroy();
        }
    }

    @Test
    void loadAllSplitsItsKeysByBytes() {
        SidecarMapStore store = directStore(sidecar.address, "direct-split",
                SidecarSettings.MAX_MESSAGE_BYTES, "4096");
        try {
            List<Object> keys = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                keys.add(i + "-" + "k".repeat(300));
            }
            int loadsBefore = sidecar.loads.size();
            store.loadAll(keys);
            List<LoadRequest> calls = sidecar.loads.subList(loadsBefore, sidecar.loads.size());
            assertTrue(calls.size() >= 3, "20 keys of ~300 bytes in requests of at most 2 KiB of keys");
            assertEquals(20, calls.stream().mapToInt(LoadRequest::getKeysCount).sum());
            for (LoadRequest call : calls) {
                assertTrue(call.getSerializedSize() <= 2048 + 64, String.valueOf(call.getSerializedSize()));
            }
        } finally {
            store.destroy();
        }
    }

    @Test
    void entryTooLargeForAnyAnswerIsRefusedNotRetriable() {
        SidecarMapStore store = directStore(sidecar.address, "direct-too-large");
        try {
            Metadata trailers = new Metadata();
            trailers.put(SidecarException.ENTRY_TOO_LARGE, "100037");
            sidecar.failureTrailers = trailers;
            sidecar.failure = Status.RESOURCE_EXHAUSTED.withDescription(
                    "map 'direct-too-large': key 0000: its value is 100012 bytes");
            int unaryBefore = sidecar.unaryCalls.size();
            SidecarException e = assertThrows(SidecarException.class, () -> store.load("big"));
            assertEquals(unaryBefore, sidecar.unaryCalls.size(), "answered on the stream: trailers in CallStatus");
            assertInstanceOf(SidecarException.Rejected.class, e);
            assertFalse(e.isRetriable());
            assertTrue(e.getMessage().contains("100012 bytes"), e.getMessage());
            assertTrue(e.getMessage().contains("listen.max-message-bytes"), e.getMessage());

            sidecar.failureTrailers = null;
            sidecar.failure = Status.RESOURCE_EXHAUSTED.withDescription("too many calls in flight");
            assertTrue(assertThrows(SidecarException.class, () -> store.load("big")).isRetriable());
        } finally {
            store.destroy();
        }
    }

    @Test
    void answersLargerThanGrpcJavasDefaultLimitAreReceived() {
        SidecarMapStore store = directStore(sidecar.address, "direct-large-answer");
        try {
            String value = "v".repeat(5 * 1024 * 1024);
            sidecar.values.put(ByteString.copyFrom(memberBytes("large")), ByteString.copyFrom(memberBytes(value)));
            assertEquals(value, toObject(store.load("large")));
        } finally {
            store.destroy();
        }
    }

    @Test
    void putSendsCompactValueWithEveryNestedSchemaAndTheToken() {
        IMap<String, GenericRecord> map = member.getMap("persisted-orders");
        int before = sidecar.stores.size();
        map.put("o-1", order("o-1"));

        assertEquals(before + 1, sidecar.stores.size());
        StoreRequest request = sidecar.stores.get(sidecar.stores.size() - 1);
        assertEquals("persisted-orders", request.getMapName());
        assertEquals(1, request.getEntriesCount());
        ByteBuffer value = request.getEntries(0).getValue().asReadOnlyByteBuffer();
        assertEquals(COMPACT_TYPE_ID, value.getInt(4), "values travel as Compact (-55), never with schema (-56)");
        Map<String, Schema> schemas = request.getSchemasList().stream()
                .collect(Collectors.toMap(Schema::getTypeName, s -> s));
        assertEquals(Set.of("Order", "Customer", "Line"), schemas.keySet());
        assertEquals(value.getLong(8), schemas.get("Order").getSchemaId(), "the value names the Order schema");
        assertEquals(List.of("customer", "id", "lines"), schemas.get("Order").getFieldsList().stream()
                .map(f -> f.getName()).toList());
        assertEquals(29, schemas.get("Order").getFields(0).getKind(), "FieldKind.COMPACT (Java and Python agree)");
        assertEquals(30, schemas.get("Order").getFields(2).getKind(), "FieldKind.ARRAY_OF_COMPACT");
        assertTrue(sidecar.authorizations.contains("Bearer s3cret"));
    }

    @Test
    void evictedEntryIsLoadedBackEqual() {
        IMap<String, GenericRecord> map = member.getMap("persisted-reload");
        GenericRecord original = order("o-2");
        map.put("o-2", original);
        map.evictAll();
        assertEquals(0, map.size());

        assertEquals(original, map.get("o-2"));
        assertNull(map.get("missing"));
    }

    @Test
    void freshClusterRegistersLoadedSchemasBeforeDeserializing() {
        IMap<String, GenericRecord> map = member.getMap("persisted-cold");
        map.put("o-3", order("o-3"));

        // A new cluster knows none of these schemas: only the sidecar has them. The load runs on a
        // partition thread and must register them cluster-wide first.
        HazelcastInstance fresh = startMember(sidecar.address);
        try {
            GenericRecord loaded = fresh.<String, GenericRecord>getMap("persisted-cold").get("o-3");
            assertNotNull(loaded);
            assertEquals("o-3", loaded.getString("id"));
            assertEquals("Ada", loaded.getGenericRecord("customer").getString("name"));
            assertEquals(5L, loaded.getArrayOfGenericRecord("lines")[1].getInt64("quantity"));
        } finally {
            fresh.shutdown();
        }
    }

    @Test
    void deleteSendsTheSerializedKey() {
        IMap<String, String> map = member.getMap("persisted-delete");
        map.put("k", "v");
        ByteString key = sidecar.stores.get(sidecar.stores.size() - 1).getEntries(0).getKey();
        map.delete("k");
        assertEquals(List.of(key), sidecar.deletes.get(sidecar.deletes.size() - 1).getKeysList());
        assertNull(map.get("k"));
    }

    @Test
    void sidecarUnavailableFailsTheWriteThroughPutWithItsMessage() {
        IMap<String, String> map = member.getMap("persisted-failing");
        sidecar.failure = Status.UNAVAILABLE.withDescription("database is down");
        RuntimeException e = assertThrows(RuntimeException.class, () -> map.put("k", "v"));
        assertTrue(causeChainMentions(e, "database is down"), String.valueOf(e));
    }

    @Test
    void storeAllRemovesStoredEntriesThenThrowsForTheRest() {
        SidecarMapStore store = directStore(sidecar.address, "direct-partial");
        try {
            sidecar.storeResults = i -> i == 1
                    ? EntryResult.newBuilder().setStatus(EntryStatus.ENTRY_STATUS_FAILED)
                            .setCode(Status.Code.UNAVAILABLE.value()).setMessage("row lock timeout").build()
                    : EntryResult.newBuilder().setStatus(i == 2
                            ? EntryStatus.ENTRY_STATUS_DEAD_LETTERED : EntryStatus.ENTRY_STATUS_WRITTEN).build();
            Map<Object, Object> entries = new LinkedHashMap<>();
            entries.put("a", "1");
            entries.put("b", "2");
            entries.put("c", "3");
            SidecarException e = assertThrows(SidecarException.class, () -> store.storeAll(entries));
            assertInstanceOf(SidecarException.Unavailable.class, e);
            assertTrue(e.getMessage().contains("row lock timeout"), e.getMessage());
            assertTrue(e.getMessage().contains("direct-partial"), e.getMessage());
            assertEquals(Map.of("b", "2"), entries);
        } finally {
            store.destroy();
        }
    }

    @Test
    void loadAllKeysStreamsEveryKeyAndLoadAllSendsOneCall() throws Exception {
        SidecarMapStore store = directStore(sidecar.address, "direct-keys");
        try {
            Map<Object, Object> entries = new LinkedHashMap<>();
            for (int i = 0; i < 5; i++) {
                entries.put("key-" + i, i);
            }
            sidecar.values.clear();
            store.storeAll(entries);

            Set<Object> keys = new HashSet<>();
            Iterable<Object> stream = store.loadAllKeys();
            stream.forEach(keys::add);
            ((AutoCloseable) stream).close();
            assertEquals(Set.of("key-0", "key-1", "key-2", "key-3", "key-4"), keys);

            int loadsBefore = sidecar.loads.size();
            Map<Object, Object> loaded = store.loadAll(new ArrayList<>(List.of("key-1", "key-3", "nope")));
            // Loaded values are handed to Hazelcast as Data, exactly as the member serialized them.
            assertTrue(loaded.values().stream().allMatch(value -> value instanceof HeapData));
            Map<Object, Object> objects = new LinkedHashMap<>();
            loaded.forEach((key, value) -> objects.put(key, toObject(value)));
            assertEquals(Map.of("key-1", 1, "key-3", 3), objects);
            assertEquals(loadsBefore + 1, sidecar.loads.size());
        } finally {
            store.destroy();
        }
    }

    @Test
    void mapsOfOneAddressShareOneChannelUntilTheLastIsDestroyed() {
        int before = SidecarChannels.openChannelCount();
        SidecarMapStore first = directStore("localhost:1", "share-1");
        SidecarMapStore second = directStore("localhost:1", "share-2");
        assertEquals(before + 1, SidecarChannels.openChannelCount());
        first.destroy();
        assertEquals(before + 1, SidecarChannels.openChannelCount());
        second.destroy();
        assertEquals(before, SidecarChannels.openChannelCount());
    }

    @Test
    void unixDomainSocketRoundTrip(@TempDir Path directory) throws Exception {
        // Netty logs through java.util.logging here, as in the member, so its Bootstrap's warnings reach this
        // handler (its logger is named after the class; the message comes formatted).
        assertInstanceOf(JdkLoggerFactory.class, InternalLoggerFactory.getDefaultFactory());
        Logger bootstrapLogger = Logger.getLogger(Bootstrap.class.getName());
        List<String> warnings = new CopyOnWriteArrayList<>();
        Handler handler = new Handler() {
            @Override
            public void publish(LogRecord record) {
                warnings.add(record.getMessage());
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        bootstrapLogger.addHandler(handler);
        try (FakeSidecar onSocket = FakeSidecar.onUnixSocket(directory.resolve("sidecar.sock"))) {
            SidecarMapStore store = directStore(onSocket.address, "direct-uds");
            try {
                store.store("k", order("o-uds"));
                Entry stored = onSocket.stores.get(0).getEntries(0);
                assertEquals(COMPACT_TYPE_ID, stored.getValue().asReadOnlyByteBuffer().getInt(4));
                assertEquals(order("o-uds"), toObject(store.load("k")));
            } finally {
                store.destroy();
            }
        } finally {
            bootstrapLogger.removeHandler(handler);
        }
        // No TCP-only option (SO_KEEPALIVE) is set on the domain socket channel.
        assertTrue(warnings.stream().noneMatch(w -> w.contains("Unknown channel option")), warnings::toString);
    }

    // ---- the Calls stream ----

    @Test
    void oneStreamPerTokenCarriesEveryCallWithTheTokenAsItsMetadata() {
        int streamsBefore = sidecar.streamsOpened.get();
        int unaryBefore = sidecar.unaryCalls.size();
        int authorizationsBefore = sidecar.streamAuthorizations.size();
        SidecarMapStore store = directStore(sidecar.address, "stream-reuse", SidecarSettings.TOKEN, "reuse-token");
        SidecarMapStore sameToken = directStore(sidecar.address, "stream-reuse-2",
                SidecarSettings.TOKEN, "reuse-token");
        SidecarMapStore otherToken = directStore(sidecar.address, "stream-other",
                SidecarSettings.TOKEN, "other-token");
        try {
            List<Object> keys = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                store.store("k" + i, "v" + i);
                keys.add("k" + i);
            }
            for (int i = 0; i < 50; i++) {
                assertEquals("v" + i, toObject(store.load("k" + i)));
            }
            store.deleteAll(keys);
            assertNull(store.load("k0"));
            sameToken.store("k", "v");
            assertEquals(streamsBefore + 1, sidecar.streamsOpened.get(), "one stream for every call of the token");
            assertEquals(List.of("Bearer reuse-token"),
                    sidecar.streamAuthorizations.subList(authorizationsBefore, sidecar.streamAuthorizations.size()));

            otherToken.store("k", "v");
            assertEquals(streamsBefore + 2, sidecar.streamsOpened.get(), "maps of another token: another stream");
            assertEquals("Bearer other-token",
                    sidecar.streamAuthorizations.get(sidecar.streamAuthorizations.size() - 1));
            assertEquals(unaryBefore, sidecar.unaryCalls.size(), "no unary RPC");
        } finally {
            store.destroy();
            sameToken.destroy();
            otherToken.destroy();
        }
    }

    @Test
    void callCarriesItsTraceContextClusterSizeAndDeadlineAndAFailureIsLoggedOnceWithTheTraceId() {
        List<String> warnings = new CopyOnWriteArrayList<>();
        Logger logger = Logger.getLogger(SidecarMapStore.class.getName());
        Handler handler = collecting(warnings, Level.WARNING);
        logger.addHandler(handler);
        SidecarMapStore store = directStore(sidecar.address, "stream-trace");
        try {
            sidecar.failure = Status.UNAVAILABLE.withDescription("database is down");
            SidecarException e = assertThrows(SidecarException.class, () -> store.store("k", "v"));
            assertEquals(Status.Code.UNAVAILABLE, e.code());
            Call call = lastCallFor("stream-trace");
            assertTrue(call.getTraceparent().matches("00-[0-9a-f]{32}-[0-9a-f]{16}-01"), call.getTraceparent());
            assertEquals(1, call.getClusterSize(), "the member's cluster size");
            assertEquals(SidecarSettings.DEFAULT_DEADLINE_MS, call.getDeadlineMs());
            String traceId = call.getTraceparent().substring(3, 35);
            List<String> logged = warnings.stream().filter(w -> w.contains("stream-trace")).toList();
            assertEquals(1, logged.size(), logged::toString);
            assertTrue(logged.get(0).contains("hz-sidecar store of 1 entry for map 'stream-trace' failed with"
                    + " UNAVAILABLE: database is down [retriable] (trace_id=" + traceId + ")"), logged.get(0));
        } finally {
            logger.removeHandler(handler);
            store.destroy();
        }
    }

    @Test
    void concurrentCallsOnOneStreamEachGetTheirOwnAnswer() throws Exception {
        int streamsBefore = sidecar.streamsOpened.get();
        SidecarMapStore store = directStore(sidecar.address, "stream-concurrent",
                SidecarSettings.TOKEN, "concurrent-token");
        ExecutorService threads = Executors.newFixedThreadPool(8);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                int thread = t;
                results.add(threads.submit(() -> {
                    start.await();
                    for (int i = 0; i < 40; i++) {
                        String key = "t" + thread + "-" + i;
                        String value = "value of " + key;
                        store.store(key, value);
                        assertEquals(value, toObject(store.load(key)));
                        Map<Object, Object> loaded = store.loadAll(new ArrayList<>(List.of(key, "absent-" + key)));
                        assertEquals(Set.of(key), loaded.keySet());
                        assertEquals(value, toObject(loaded.get(key)));
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> result : results) {
                result.get(60, TimeUnit.SECONDS);
            }
            assertEquals(streamsBefore + 1, sidecar.streamsOpened.get());
        } finally {
            threads.shutdownNow();
            store.destroy();
        }
    }

    @Test
    void callWithoutAnAnswerInTimeFailsRetriableAndIsCancelled() throws Exception {
        SidecarMapStore store = directStore(sidecar.address, "stream-deadline", SidecarSettings.DEADLINE_MS, "300");
        try {
            store.store("warm", "up");
            int streams = sidecar.streamsOpened.get();
            sidecar.holdReplies = true;
            SidecarException e = assertThrows(SidecarException.class, () -> store.store("k", "v"));
            assertInstanceOf(SidecarException.Unavailable.class, e);
            assertTrue(e.isRetriable());
            assertEquals(Status.Code.DEADLINE_EXCEEDED, e.code());
            assertTrue(e.getMessage().contains("300 ms"), e.getMessage());
            assertTrue(e.getMessage().contains(SidecarSettings.DEADLINE_MS), e.getMessage());
            Call held = sidecar.held.poll(10, TimeUnit.SECONDS);
            assertNotNull(held);
            assertEquals(300, held.getDeadlineMs());
            assertEquals(held.getId(), sidecar.cancels.poll(10, TimeUnit.SECONDS), "the call was withdrawn");

            // A late reply to the withdrawn call goes nowhere; the stream carries on.
            sidecar.holdReplies = false;
            sidecar.reply(sidecar.answer(held));
            store.store("k", "v");
            assertEquals("v", toObject(store.load("k")));
            assertEquals(streams, sidecar.streamsOpened.get());
        } finally {
            store.destroy();
        }
    }

    @Test
    void interruptedCallIsCancelledAndKeepsTheInterrupt() throws Exception {
        SidecarMapStore store = directStore(sidecar.address, "stream-interrupt");
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            sidecar.holdReplies = true;
            AtomicBoolean interrupted = new AtomicBoolean();
            Future<SidecarException> call = thread.submit(() -> {
                try {
                    store.store("k", "v");
                    return null;
                } catch (SidecarException e) {
                    interrupted.set(Thread.currentThread().isInterrupted());
                    return e;
                }
            });
            Call held = sidecar.held.poll(10, TimeUnit.SECONDS);
            assertNotNull(held);
            thread.shutdownNow();  // interrupts the waiting thread
            SidecarException e = call.get(10, TimeUnit.SECONDS);
            assertNotNull(e);
            assertEquals(Status.Code.CANCELLED, e.code());
            assertTrue(interrupted.get(), "the interrupt flag is restored");
            assertEquals(held.getId(), sidecar.cancels.poll(10, TimeUnit.SECONDS));
        } finally {
            thread.shutdownNow();
            store.destroy();
        }
    }

    @Test
    void brokenStreamFailsItsPendingCallsUnavailableAndTheNextCallOpensANewOne() throws Exception {
        SidecarMapStore store = directStore(sidecar.address, "stream-broken");
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            store.store("warm", "up");
            sidecar.holdReplies = true;
            Future<?> call = thread.submit(() -> store.store("k", "v"));
            assertNotNull(sidecar.held.poll(10, TimeUnit.SECONDS), "the call reached the sidecar");
            int streams = sidecar.streamsOpened.get();
            sidecar.breakStreams(Status.UNAVAILABLE.withDescription("connection reset by peer"));
            ExecutionException e = assertThrows(ExecutionException.class, () -> call.get(10, TimeUnit.SECONDS));
            SidecarException failure = assertInstanceOf(SidecarException.class, e.getCause());
            assertEquals(Status.Code.UNAVAILABLE, failure.code());
            assertTrue(failure.isRetriable());
            assertTrue(failure.getMessage().contains("connection reset by peer"), failure.getMessage());

            sidecar.holdReplies = false;
            store.store("k", "v");
            assertEquals(streams + 1, sidecar.streamsOpened.get(), "reconnected");
            assertEquals("v", toObject(store.load("k")));
        } finally {
            thread.shutdownNow();
            store.destroy();
        }
    }

    @Test
    void sidecarWithoutTheStreamIsAnsweredByUnaryCalls() {
        List<String> infos = new CopyOnWriteArrayList<>();
        Logger logger = Logger.getLogger(CallStream.class.getName());
        Handler handler = collecting(infos, Level.INFO);
        logger.addHandler(handler);
        sidecar.callsUnimplemented = true;
        SidecarMapStore store = directStore(sidecar.address, "stream-unimplemented",
                SidecarSettings.TOKEN, "old-sidecar-token");
        try {
            int streams = sidecar.streamsOpened.get();
            int unaryBefore = sidecar.unaryCalls.size();
            store.store("k", "v");
            assertEquals(streams + 1, sidecar.streamsOpened.get(), "the stream was tried");
            assertEquals(List.of("store"), sidecar.unaryCalls.subList(unaryBefore, sidecar.unaryCalls.size()));
            assertEquals("v", toObject(store.load("k")));
            store.delete("k");
            assertEquals(streams + 1, sidecar.streamsOpened.get(), "and never again");
            assertEquals(List.of("store", "load", "delete"),
                    sidecar.unaryCalls.subList(unaryBefore, sidecar.unaryCalls.size()));
            assertEquals(1, infos.stream().filter(m -> m.contains("does not serve the call stream")).count(),
                    infos::toString);
        } finally {
            logger.removeHandler(handler);
            store.destroy();
        }
    }

    @Test
    void unaryTransportNeverOpensAStream() {
        int streams = sidecar.streamsOpened.get();
        int unaryBefore = sidecar.unaryCalls.size();
        SidecarMapStore store = directStore(sidecar.address, "stream-off",
                SidecarSettings.TRANSPORT, "unary", SidecarSettings.TOKEN, "unary-token");
        try {
            store.store("k", "v");
            assertEquals("v", toObject(store.load("k")));
            store.delete("k");
            sidecar.failure = Status.UNAVAILABLE.withDescription("database is down");
            assertTrue(assertThrows(SidecarException.class, () -> store.store("k", "v")).isRetriable());
            assertEquals(streams, sidecar.streamsOpened.get());
            assertEquals(List.of("store", "load", "delete", "store"),
                    sidecar.unaryCalls.subList(unaryBefore, sidecar.unaryCalls.size()));
            assertTrue(sidecar.authorizations.contains("Bearer unary-token"));
            assertFalse(sidecar.streamAuthorizations.contains("Bearer unary-token"));
        } finally {
            store.destroy();
        }
    }

    private static Call lastCallFor(String mapName) {
        List<Call> calls = sidecar.calls;
        for (int i = calls.size() - 1; i >= 0; i--) {
            Call call = calls.get(i);
            if (call.getStore().getMapName().equals(mapName) || call.getLoad().getMapName().equals(mapName)
                    || call.getDelete().getMapName().equals(mapName)) {
                return call;
            }
        }
        throw new AssertionError("no call for " + mapName);
    }

    /** A log handler that keeps the messages of {@code level} and above. */
    private static Handler collecting(List<String> messages, Level level) {
        return new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (record.getLevel().intValue() >= level.intValue()) {
                    messages.add(record.getMessage());
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
    }

    private static boolean causeChainMentions(Throwable e, String text) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t.getMessage() != null && t.getMessage().contains(text)) {
                return true;
            }
        }
        return false;
    }
}

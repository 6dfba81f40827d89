package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
import com.hazelcast.config.MapConfig;
import com.hazelcast.config.MapStoreConfig;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.instance.impl.HazelcastInstanceImpl;
import com.hazelcast.instance.impl.HazelcastInstanceProxy;
import com.hazelcast.internal.serialization.Data;
import com.hazelcast.internal.serialization.InternalSerializationService;
import com.hazelcast.internal.serialization.impl.HeapData;
import com.hazelcast.internal.serialization.impl.compact.SchemaService;
import com.hazelcast.logging.ILogger;
import com.hazelcast.map.MapLoaderLifecycleSupport;
import com.hazelcast.map.MapStore;
import com.hazelcast.spi.impl.SerializationServiceSupport;
import io.github.hzsidecar.proto.v1.DeleteRequest;
import io.github.hzsidecar.proto.v1.DeleteResponse;
import io.github.hzsidecar.proto.v1.Entry;
import io.github.hzsidecar.proto.v1.KeyBatch;
import io.github.hzsidecar.proto.v1.LoadAllKeysRequest;
import io.github.hzsidecar.proto.v1.LoadRequest;
import io.github.hzsidecar.proto.v1.LoadResponse;
import io.github.hzsidecar.proto.v1.MapStoreGrpc;
import io.github.hzsidecar.proto.v1.StoreRequest;
import io.github.hzsidecar.proto.v1.StoreResponse;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;

import java.io.Closeable;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.function.Supplier;

/**
 * The MapStore and MapLoader of one IMap: every call is forwarded to the hz-sidecar over gRPC.
 *
 * <p>Keys and values travel as the member's own serialized form ({@code Data} bytes); Compact values travel
 * with every schema they use. The shim decides nothing about persistence: it translates calls and errors.
 * It has no retry loop either: write-behind retries failed stores itself, write-through fails the caller.
 * The one thing it must decide is which failures Hazelcast may retry: an entry the sidecar refuses for good
 * (INVALID_ARGUMENT) would be retried forever by write-behind, so it is taken off the queue and logged instead
 * (the README's "Errors" table is the whole contract).
 *
 * <p>Store, Delete and Load calls travel on the {@link CallStream} that every map of the channel with the same
 * token shares ({@code sidecar.transport=stream}, the default), or as unary RPCs ({@code unary}, or a sidecar
 * without the stream); loadAllKeys is always its own server-streaming RPC. Either way a call's answer or
 * error is the same, and so is what this class makes of it.
 */
public class SidecarMapStore implements MapStore<Object, Object>, MapLoaderLifecycleSupport {

    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    /** The member's current cluster size: the sidecar refuses writes to a per-sidecar store when > 1. */
    static final Metadata.Key<String> CLUSTER_SIZE =
            Metadata.Key.of("x-hz-cluster-size", Metadata.ASCII_STRING_MARSHALLER);

    private String mapName;
    private SidecarSettings settings;
    private SidecarChannels.Endpoint endpoint;
    private InternalSerializationService serialization;
    private SchemaService schemaService;
    private ILogger logger;
    /** The unary RPCs: loadAllKeys, and every call when {@link #calls} is null or unsupported. */
    private MapStoreGrpc.MapStoreBlockingStub stub;
    /** The shared call stream of the channel and token; null with {@code sidecar.transport=unary}. */
    private CallStream calls;
    /** The member's current cluster size (members join and leave). */
    private IntSupplier clusterSize;
    /** Whether Hazelcast writes this map behind, retrying from its queue whatever a store throws for. */
    private boolean writeBehind;

    @Override
    public void init(HazelcastInstance hazelcastInstance, Properties properties, String mapName) {
        this.mapName = mapName;
        this.settings = SidecarSettings.fromProperties(properties);
        this.serialization = (InternalSerializationService)
                ((SerializationServiceSupport) hazelcastInstance).getSerializationService();
        this.schemaService = schemaService(hazelcastInstance);
        this.logger = hazelcastInstance.getLoggingService().getLogger(SidecarMapStore.class);
        this.writeBehind = isWriteBehind(hazelcastInstance, mapName);
        this.clusterSize = () -> hazelcastInstance.getCluster().getMembers().size();
        this.endpoint = new SidecarChannels.Endpoint(settings.address(), settings.tls());
        this.stub = MapStoreGrpc.newBlockingStub(
                ClientInterceptors.intercept(SidecarChannels.acquire(endpoint), interceptors(settings, clusterSize)));
        this.calls = settings.transport() == SidecarSettings.Transport.STREAM
                ? SidecarChannels.calls(endpoint, settings.token()) : null;
        logger.info("Persistence enabled for " + mapName + " via hz-sidecar at " + settings.address());
    }

    @Override
    public void destroy() {
        if (endpoint != null) {
            SidecarChannels.release(endpoint);
            endpoint = null;
        }
    }

    /**
     * The interceptors every unary call goes through: the place for call metadata (the bearer token, the W3C
     * {@code traceparent} of {@link TraceParent}, the member's cluster size). The call stream carries the
     * same in each {@code Call} and in its own metadata instead.
     */
    static List<ClientInterceptor> interceptors(SidecarSettings settings, IntSupplier clusterSize) {
        List<ClientInterceptor> interceptors = new ArrayList<>();
        if (settings.token() != null) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + settings.token());
            interceptors.add(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        interceptors.add(TraceParent.interceptor());
        interceptors.add(clusterSizeInterceptor(clusterSize));
        return interceptors;
    }

    /** Sends the member's cluster size as it is when each call starts (members join and leave). */
    static ClientInterceptor clusterSizeInterceptor(IntSupplier clusterSize) {
        return new PerCallHeader(CLUSTER_SIZE, () -> Integer.toString(clusterSize.getAsInt()));
    }

    /** Write-behind is a map-store with write-delay-seconds above 0; 0 is write-through. */
    private static boolean isWriteBehind(HazelcastInstance hazelcastInstance, String mapName) {
        MapConfig map = hazelcastInstance.getConfig().findMapConfig(mapName);
        MapStoreConfig store = map == null ? null : map.getMapStoreConfig();
        return store != null && store.isEnabled() && store.getWriteDelaySeconds() > 0;
    }

    private static SchemaService schemaService(HazelcastInstance hazelcastInstance) {
        HazelcastInstance instance = hazelcastInstance;
        if (instance instanceof HazelcastInstanceProxy proxy) {
            instance = proxy.getOriginal();
        }
        if (instance instanceof HazelcastInstanceImpl member) {
            return member.node.getSchemaService();
        }
        throw new IllegalStateException("hz-sidecar's MapStore runs inside a Hazelcast member, not in "
                + hazelcastInstance.getClass().getName());
    }

    // ---- MapStore ----

    @Override
    public void store(Object key, Object value) {
        Map<Object, Object> entries = new HashMap<>(2);
        entries.put(key, value);
        store(entries, "store");
    }

    @Override
    public void storeAll(Map<Object, Object> map) {
        store(map, "storeAll");
    }

    private void store(Map<Object, Object> entries, String operation) {
        if (entries.isEmpty()) {
            return;
        }
        List<Object> keys = new ArrayList<>(entries.size());
        CompactSchemas schemas = new CompactSchemas(serialization);
        StoreRequest.Builder request = StoreRequest.newBuilder().setMapName(mapName);
        for (Map.Entry<Object, Object> entry : entries.entrySet()) {
            keys.add(entry.getKey());
            request.addEntries(Entry.newBuilder()
                    .setKey(toBytes(entry.getKey(), schemas))
                    .setValue(toBytes(entry.getValue(), schemas)));
        }
        request.addAllSchemas(schemas.toProto());
        int count = keys.size();
        StoreResponse response;
        TraceParent trace = TraceParent.random();
        try {
            response = call(operation, count, trace, () -> store(request.build(), trace));
        } catch (SidecarException.Rejected e) {
            if (count > 1) {
                // Hazelcast retries the batch, then each entry alone: that finds the entry refused.
                throw e;
            }
            refused(operation, count, List.of("key " + keys.get(0) + ": " + e.getMessage()), e);
            entries.clear();
            return;
        }
        StoreOutcome outcome;
        try {
            outcome = StoreOutcome.apply(keys, response.getResultsList(), entries);
        } catch (IllegalStateException e) {
            logger.warning("hz-sidecar " + operation + " of " + count + " entries for map '" + mapName
                    + "': " + e.getMessage());
            throw e;
        }
        if (outcome.deadLettered() > 0) {
            logger.warning("hz-sidecar " + operation + " for map '" + mapName + "': " + outcome.deadLettered()
                    + " of " + count + " entries could not be decoded and were dead-lettered (see hz-sidecar dlq list)");
        }
        if (!outcome.rejected().isEmpty()) {
            refused(operation, count, outcome.rejected(), SidecarException.of(
                    Status.INVALID_ARGUMENT.withDescription(outcome.rejected().get(0)), mapName, operation, count,
                    null));
        }
        if (outcome.failed() > 0) {
            SidecarException failure = SidecarException.of(outcome.failureStatus(), mapName, operation, count, null);
            logger.warning(failure.getMessage());
            throw failure;
        }
    }

    /**
     * Entries the sidecar refused for good (INVALID_ARGUMENT): the same call would be refused again. Write-through
     * fails the caller's operation with {@code failure}. Write-behind would retry them forever (the batch, then
     * each entry, then again from the queue), so they are dropped: already removed from the map given to
     * storeAll (or the single store returns normally); they stay in the IMap, not in the store, and this log
     * line is their record.
     */
    private void refused(String operation, int count, List<String> refusals, SidecarException failure) {
        if (!writeBehind) {
            throw failure;
        }
        int shown = Math.min(refusals.size(), 10);
        logger.severe("hz-sidecar " + operation + " for map '" + mapName + "': " + refusals.size() + " of " + count
                + " entries refused by the sidecar for good (INVALID_ARGUMENT), dropped from the write-behind queue"
                + " and not persisted: " + String.join("; ", refusals.subList(0, shown))
                + (shown < refusals.size() ? "; and " + (refusals.size() - shown) + " more" : ""));
    }

    @Override
    public void delete(Object key) {
        deleteAll(Collections.singletonList(key));
    }

    @Override
    public void deleteAll(Collection<Object> keys) {
        if (keys.isEmpty()) {
            return;
        }
        DeleteRequest.Builder request = DeleteRequest.newBuilder().setMapName(mapName);
        for (Object key : keys) {
            request.addKeys(toBytes(key, null));
        }
        String operation = keys.size() == 1 ? "delete" : "deleteAll";
        TraceParent trace = TraceParent.random();
        try {
            call(operation, keys.size(), trace, () -> delete(request.build(), trace));
        } catch (SidecarException.Rejected e) {
            if (keys.size() > 1) {
                throw e;
            }
            refused(operation, 1, List.of("key " + keys.iterator().next() + ": " + e.getMessage()), e);
        }
    }

    // ---- MapLoader ----

    @Override
    public Object load(Object key) {
        return load(Map.of(toBytes(key, null), key), "load").get(key);
    }

    /**
     * Loads in calls of at most {@value SidecarSettings#LOAD_MAX_KEYS} keys whose bytes take at most half the
     * sidecar's message limit ({@value SidecarSettings#MAX_MESSAGE_BYTES}): a larger request would be refused,
     * and the answer needs room for entries beside the keys it defers.
     */
    @Override
    public Map<Object, Object> loadAll(Collection<Object> keys) {
        Map<Object, Object> result = new HashMap<>();
        long budget = settings.maxMessageBytes() / 2;
        Map<ByteString, Object> chunk = new LinkedHashMap<>();
        long chunkBytes = 0;
        for (Object key : keys) {
            ByteString bytes = toBytes(key, null);
            // The key's field in the request: tag, length (at most 5 bytes), bytes.
            long size = 6L + bytes.size();
            if (!chunk.isEmpty() && (chunk.size() == settings.loadMaxKeys() || chunkBytes + size > budget)) {
                result.putAll(load(chunk, "loadAll"));
                chunk = new LinkedHashMap<>();
                chunkBytes = 0;
            }
            chunk.put(bytes, key);
            chunkBytes += size;
        }
        if (!chunk.isEmpty()) {
            result.putAll(load(chunk, "loadAll"));
        }
        return result;
    }

    /**
     * Loads {@code keys} (each key's bytes to the key), asking again for the keys an answer defers (the sidecar
     * keeps each answer within its message limit) until none is left.
     */
    private Map<Object, Object> load(Map<ByteString, Object> keys, String operation) {
        Map<Object, Object> result = new LinkedHashMap<>();
        Collection<ByteString> pending = keys.keySet();
        while (!pending.isEmpty()) {
            LoadRequest request = LoadRequest.newBuilder().setMapName(mapName).addAllKeys(pending).build();
            TraceParent trace = TraceParent.random();
            LoadResponse response = call(operation, pending.size(), trace, () -> load(request, trace));
            CompactSchemas.register(schemaService, response.getSchemasList());
            for (Entry entry : response.getEntriesList()) {
                Object key = keys.get(entry.getKey());
                if (key == null) {
                    key = toObject(entry.getKey());
                }
                // The value's Data as the member serializes it: Hazelcast keeps map values serialized
                // and passes a Data through toData unchanged, so deserializing it here would only be
                // undone at once. Its schemas were registered above, for whoever reads it.
                result.put(key, new HeapData(entry.getValue().toByteArray()));
            }
            List<ByteString> deferred = response.getDeferredKeysList();
            if (deferred.size() >= pending.size() && !deferred.isEmpty()) {
                // Each answer must make progress, or this would ask forever.
                String message = "hz-sidecar " + operation + " for map '" + mapName + "' deferred all "
                        + pending.size() + " keys it was asked for; the shim and the sidecar disagree on the"
                        + " wire contract";
                logger.warning(message);
                throw new IllegalStateException(message);
            }
            if (!deferred.isEmpty() && logger.isFineEnabled()) {
                logger.fine("hz-sidecar " + operation + " for map '" + mapName + "': " + response.getEntriesCount()
                        + " entries answered, " + deferred.size() + " keys deferred to a further call");
            }
            pending = deferred;
        }
        return result;
    }

    /**
     * The keys of the store, streamed: batches are read as Hazelcast iterates, and the stream is cancelled
     * when Hazelcast closes the iterable (its key loader closes a {@link Closeable} one).
     */
    @Override
    public Iterable<Object> loadAllKeys() {
        return new KeyStream();
    }

    private final class KeyStream implements Iterable<Object>, Closeable {
        private final List<Context.CancellableContext> streams = new ArrayList<>();

        @Override
        public Iterator<Object> iterator() {
            TraceParent trace = TraceParent.random();
            Context.CancellableContext context = Context.current().withCancellation();
            synchronized (streams) {
                streams.add(context);
            }
            LoadAllKeysRequest request = LoadAllKeysRequest.newBuilder()
                    .setMapName(mapName)
                    .setBatchSize(settings.loadAllKeysBatchSize())
                    .build();
            Iterator<KeyBatch> batches;
            // The call is bound to the context current when it starts, so close() can cancel it.
            Context previous = context.attach();
            try {
                batches = call("loadAllKeys", 0, trace, () -> unary(trace, () -> stub
                        .withDeadlineAfter(settings.loadAllKeysDeadlineMs(), TimeUnit.MILLISECONDS)
                        .loadAllKeys(request)));
            } finally {
                context.detach(previous);
            }
            return new Iterator<>() {
                private Iterator<ByteString> batch = Collections.emptyIterator();
                private int received;

                @Override
                public boolean hasNext() {
                    while (!batch.hasNext()) {
                        boolean more = call("loadAllKeys", received, trace, batches::hasNext);
                        if (!more) {
                            return false;
                        }
                        KeyBatch next = call("loadAllKeys", received, trace, batches::next);
                        CompactSchemas.register(schemaService, next.getSchemasList());
                        batch = next.getKeysList().iterator();
                    }
                    return true;
                }

                @Override
                public Object next() {
                    if (!hasNext()) {
                        throw new NoSuchElementException();
                    }
                    received++;
                    return toObject(batch.next());
                }
            };
        }

        @Override
        public void close() {
            synchronized (streams) {
                for (Context.CancellableContext context : streams) {
                    context.cancel(null);
                }
                streams.clear();
            }
        }
    }

    // ---- plumbing ----

    private StoreResponse store(StoreRequest request, TraceParent trace) {
        if (streamed()) {
            StoreResponse response = calls.store(request, trace.header(), clusterSize.getAsInt(),
                    settings.deadlineMs());
            if (response != null) {
                return response;
            }
        }
        return unary(trace, () -> deadlined().store(request));
    }

    private DeleteResponse delete(DeleteRequest request, TraceParent trace) {
        if (streamed()) {
            DeleteResponse response = calls.delete(request, trace.header(), clusterSize.getAsInt(),
                    settings.deadlineMs());
            if (response != null) {
                return response;
            }
        }
        return unary(trace, () -> deadlined().delete(request));
    }

    private LoadResponse load(LoadRequest request, TraceParent trace) {
        if (streamed()) {
            LoadResponse response = calls.load(request, trace.header(), clusterSize.getAsInt(),
                    settings.deadlineMs());
            if (response != null) {
                return response;
            }
        }
        return unary(trace, () -> deadlined().load(request));
    }

    /** Whether calls go on the stream: configured so, and the sidecar serves it (else null answers: unary). */
    private boolean streamed() {
        return calls != null && calls.supported();
    }

    private MapStoreGrpc.MapStoreBlockingStub deadlined() {
        return stub.withDeadlineAfter(settings.deadlineMs(), TimeUnit.MILLISECONDS);
    }

    /**
     * Starts a unary (or server-streaming) RPC in {@code trace}: its interceptor reads the trace from the gRPC
     * context of the calling thread.
     */
    private static <T> T unary(TraceParent trace, Supplier<T> rpc) {
        Context traced = Context.current().withValue(TraceParent.CURRENT, trace);
        Context previous = traced.attach();
        try {
            return rpc.get();
        } finally {
            traced.detach(previous);
        }
    }

    /**
     * Runs one gRPC interaction in {@code trace} (on the call stream or as an RPC); a failure becomes a
     * {@link SidecarException}, logged once here with the trace id that finds the sidecar's spans of the call.
     */
    private <T> T call(String operation, int count, TraceParent trace, Interaction<T> interaction) {
        try {
            T result = interaction.run();
            if (logger.isFineEnabled()) {
                logger.fine("hz-sidecar " + operation + " of " + count + " entries for map '" + mapName
                        + "' trace_id=" + trace.traceId());
            }
            return result;
        } catch (StatusRuntimeException e) {
            SidecarException failure = SidecarException.of(e, mapName, operation, count);
            logger.warning(failure.getMessage() + " (trace_id=" + trace.traceId() + ")");
            throw failure;
        }
    }

    /** One blocking interaction; gRPC and the call stream report failures as {@link StatusRuntimeException}. */
    @FunctionalInterface
    private interface Interaction<T> {
        T run();
    }

    private ByteString toBytes(Object object, CompactSchemas schemas) {
        Data data = serialization.toData(object);
        if (schemas != null) {
            schemas.collect(data);
        }
        return ByteString.copyFrom(data.toByteArray());
    }

    private Object toObject(ByteString bytes) {
        return serialization.toObject(new HeapData(bytes.toByteArray()));
    }
}

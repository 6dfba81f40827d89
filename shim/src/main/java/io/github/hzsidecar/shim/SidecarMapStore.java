package io.github.hzsidecar.shim;

import com.google.protobuf.ByteString;
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

/**
 * The MapStore and MapLoader of one IMap: every call is forwarded to the hz-sidecar over gRPC.
 *
 * <p>Keys and values travel as the member's own serialized form ({@code Data} bytes); Compact values travel
 * with every schema they use. The shim decides nothing about persistence: it translates calls and errors.
 * It has no retry loop either: write-behind retries failed stores itself, write-through fails the caller.
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
    private MapStoreGrpc.MapStoreBlockingStub stub;

    @Override
    public void init(HazelcastInstance hazelcastInstance, Properties properties, String mapName) {
        this.mapName = mapName;
        this.settings = SidecarSettings.fromProperties(properties);
        this.serialization = (InternalSerializationService)
                ((SerializationServiceSupport) hazelcastInstance).getSerializationService();
        this.schemaService = schemaService(hazelcastInstance);
        this.logger = hazelcastInstance.getLoggingService().getLogger(SidecarMapStore.class);
        this.endpoint = new SidecarChannels.Endpoint(settings.address(), settings.tls());
        this.stub = MapStoreGrpc.newBlockingStub(
                ClientInterceptors.intercept(SidecarChannels.acquire(endpoint),
                        interceptors(settings, () -> hazelcastInstance.getCluster().getMembers().size())));
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
     * The interceptors every call goes through: the place for call metadata (the bearer token, the W3C
     * {@code traceparent} of {@link TraceParent}, the member's cluster size).
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
        StoreResponse response = call(operation, count,
                () -> deadlined().store(request.build()));
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
        if (outcome.failed() > 0) {
            SidecarException failure = SidecarException.of(outcome.failureStatus(), mapName, operation, count, null);
            logger.warning(failure.getMessage());
            throw failure;
        }
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
        call(keys.size() == 1 ? "delete" : "deleteAll", keys.size(), () -> deadlined().delete(request.build()));
    }

    // ---- MapLoader ----

    @Override
    public Object load(Object key) {
        return load(Collections.singletonList(key), "load").get(key);
    }

    @Override
    public Map<Object, Object> loadAll(Collection<Object> keys) {
        Map<Object, Object> result = new HashMap<>();
        List<Object> chunk = new ArrayList<>(Math.min(keys.size(), settings.loadMaxKeys()));
        for (Object key : keys) {
            chunk.add(key);
            if (chunk.size() == settings.loadMaxKeys()) {
                result.putAll(load(chunk, "loadAll"));
                chunk.clear();
            }
        }
        if (!chunk.isEmpty()) {
            result.putAll(load(chunk, "loadAll"));
        }
        return result;
    }

    private Map<Object, Object> load(List<Object> keys, String operation) {
        if (keys.isEmpty()) {
            return Collections.emptyMap();
        }
        LoadRequest.Builder request = LoadRequest.newBuilder().setMapName(mapName);
        Map<ByteString, Object> requested = new HashMap<>();
        for (Object key : keys) {
            ByteString bytes = toBytes(key, null);
            request.addKeys(bytes);
            requested.put(bytes, key);
        }
        LoadResponse response = call(operation, keys.size(), () -> deadlined().load(request.build()));
        CompactSchemas.register(schemaService, response.getSchemasList());
        Map<Object, Object> result = new LinkedHashMap<>();
        for (Entry entry : response.getEntriesList()) {
            Object key = requested.get(entry.getKey());
            if (key == null) {
                key = toObject(entry.getKey());
            }
            // The value's Data as the member serializes it: Hazelcast keeps map values serialized
            // and passes a Data through toData unchanged, so deserializing it here would only be
            // undone at once. Its schemas were registered above, for whoever reads it.
            result.put(key, new HeapData(entry.getValue().toByteArray()));
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
                batches = call("loadAllKeys", 0, trace, () -> stub
                        .withDeadlineAfter(settings.loadAllKeysDeadlineMs(), TimeUnit.MILLISECONDS)
                        .loadAllKeys(request));
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

    private MapStoreGrpc.MapStoreBlockingStub deadlined() {
        return stub.withDeadlineAfter(settings.deadlineMs(), TimeUnit.MILLISECONDS);
    }

    /** Runs one gRPC interaction as a new trace (see {@link TraceParent}). */
    private <T> T call(String operation, int count, Interaction<T> interaction) {
        return call(operation, count, TraceParent.random(), interaction);
    }

    /**
     * Runs one gRPC interaction in {@code trace}; a failure becomes a {@link SidecarException}, logged once
     * here with the trace id that finds the sidecar's spans of the call.
     */
    private <T> T call(String operation, int count, TraceParent trace, Interaction<T> interaction) {
        Context traced = Context.current().withValue(TraceParent.CURRENT, trace);
        Context previous = traced.attach();
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
        } finally {
            traced.detach(previous);
        }
    }

    /** One blocking stub interaction; gRPC reports failures as {@link StatusRuntimeException}. */
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

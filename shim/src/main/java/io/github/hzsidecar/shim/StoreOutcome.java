package io.github.hzsidecar.shim;

import io.github.hzsidecar.proto.v1.EntryResult;
import io.github.hzsidecar.proto.v1.EntryStatus;
import io.grpc.Status;

import java.util.List;
import java.util.Map;

/**
 * What a Store call did to each entry, applied to the map Hazelcast passed to {@code storeAll}.
 *
 * <p>Hazelcast's contract ({@code MapStore#storeAll} javadoc): if storeAll throws, the entries still in the
 * map are retried one by one with {@code store()}, and "entries removed from the map will be not passed to
 * subsequent call to store() method any more", so a MapStore handles a partial failure by removing what it
 * did store and then throwing. The write-behind processor ({@code DefaultWriteBehindProcessor
 * #callBatchStoreWithListeners}, then {@code callSingleStoreWithListeners} per remaining entry) is what
 * relies on it. WRITTEN and DEAD_LETTERED entries are both finished: a dead-lettered entry is kept by the
 * sidecar and must not be retried, or one poison entry would stall the queue forever (hazelcast#26303).
 *
 * @param written      entries durably written
 * @param deadLettered entries the sidecar could not decode and kept in its dead-letter store
 * @param failed       entries not written
 * @param firstFailure the first failed entry's result, or null
 */
record StoreOutcome(int written, int deadLettered, int failed, EntryResult firstFailure) {

    /**
     * Removes the finished entries from {@code entries} and counts the rest.
     *
     * @param keys    the keys in request order
     * @param results the sidecar's results, one per key, same order
     * @param entries the map given to storeAll; finished entries are removed from it
     * @throws IllegalStateException when the number of results is not the number of entries; nothing is
     *                               removed then, since nothing can be attributed
     */
    static <K> StoreOutcome apply(List<K> keys, List<EntryResult> results, Map<K, ?> entries) {
        if (results.size() != keys.size()) {
            throw new IllegalStateException("hz-sidecar answered " + results.size() + " results for "
                    + keys.size() + " entries; the shim and the sidecar disagree on the wire contract");
        }
        int written = 0;
        int deadLettered = 0;
        int failed = 0;
        EntryResult firstFailure = null;
        for (int i = 0; i < keys.size(); i++) {
            EntryResult result = results.get(i);
            EntryStatus status = result.getStatus();
            if (status == EntryStatus.ENTRY_STATUS_WRITTEN || status == EntryStatus.ENTRY_STATUS_DEAD_LETTERED) {
                entries.remove(keys.get(i));
                if (status == EntryStatus.ENTRY_STATUS_WRITTEN) {
                    written++;
                } else {
                    deadLettered++;
                }
            } else {
                failed++;
                if (firstFailure == null) {
                    firstFailure = result;
                }
            }
        }
        return new StoreOutcome(written, deadLettered, failed, firstFailure);
    }

    /** The status that describes the failed entries: the first one's code, UNKNOWN if the sidecar gave none. */
    Status failureStatus() {
        if (firstFailure == null) {
            return Status.OK;
        }
        Status status = firstFailure.getStatus() == EntryStatus.ENTRY_STATUS_FAILED && firstFailure.getCode() != 0
                ? Status.fromCodeValue(firstFailure.getCode())
                : Status.UNKNOWN;
        String detail = firstFailure.getStatus() == EntryStatus.ENTRY_STATUS_FAILED
                ? firstFailure.getMessage()
                : "entry result " + firstFailure.getStatus() + " " + firstFailure.getMessage();
        return status.withDescription(failed + " of " + (written + deadLettered + failed)
                + " entries not written; first: " + detail);
    }
}

package io.github.hzsidecar.shim;

import io.github.hzsidecar.proto.v1.EntryResult;
import io.github.hzsidecar.proto.v1.EntryStatus;
import io.grpc.Status;

import java.util.ArrayList;
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
 * relies on it: it retries the batch, then each entry still in the map, and puts back on the queue what still
 * fails, forever. So WRITTEN, DEAD_LETTERED and rejected entries (FAILED with INVALID_ARGUMENT: the sidecar
 * can never write them, e.g. undecodable with {@code on-poison: reject}) are all finished and removed; one
 * poison entry left in the map would be retried forever (hazelcast#26303). Entries FAILED with any other code
 * stay, for Hazelcast to retry.
 *
 * @param written      entries durably written
 * @param deadLettered entries the sidecar could not decode and kept in its dead-letter store
 * @param rejected     entries the sidecar refused for good: each one's key and the sidecar's message
 * @param failed       entries not written, to be retried
 * @param firstFailure the first of those failed entries' result, or null
 */
record StoreOutcome(int written, int deadLettered, List<String> rejected, int failed, EntryResult firstFailure) {

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
        List<String> rejected = new ArrayList<>();
        int failed = 0;
        EntryResult firstFailure = null;
        for (int i = 0; i < keys.size(); i++) {
            EntryResult result = results.get(i);
            EntryStatus status = result.getStatus();
            if (isRejection(result)) {
                entries.remove(keys.get(i));
                rejected.add("key " + keys.get(i) + ": " + result.getMessage());
            } else if (status == EntryStatus.ENTRY_STATUS_WRITTEN
                    || status == EntryStatus.ENTRY_STATUS_DEAD_LETTERED) {
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
        return new StoreOutcome(written, deadLettered, List.copyOf(rejected), failed, firstFailure);
    }

    /** Whether the sidecar can never write this entry as it is, so retrying it is pointless. */
    static boolean isRejection(EntryResult result) {
        return result.getStatus() == EntryStatus.ENTRY_STATUS_FAILED
                && result.getCode() == Status.Code.INVALID_ARGUMENT.value();
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
        return status.withDescription(failed + " of " + (written + deadLettered + rejected.size() + failed)
                + " entries not written; first: " + detail);
    }
}

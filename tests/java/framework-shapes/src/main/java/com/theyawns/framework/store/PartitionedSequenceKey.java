package com.theyawns.framework.store;

import com.hazelcast.partition.PartitionAware;

import java.io.Serializable;
import java.util.Objects;

/**
 * The event-store key of the reference event-sourcing framework, reproduced with the same class
 * name, fields and serialVersionUID so that its Java-serialized bytes are the framework's own:
 * a global sequence number plus the aggregate's key, which also routes the entry to the aggregate's
 * partition (PartitionAware), so that all events of one aggregate live on one member.
 *
 * <p>Plain default Java serialization: no writeObject/readObject.
 *
 * @param <K> the type of the aggregate (partition) key
 */
public class PartitionedSequenceKey<K> implements PartitionAware<K>, Comparable<PartitionedSequenceKey<K>>, Serializable {

    private static final long serialVersionUID = 1L;

    private final long sequence;
    private final K partitionKey;

    public PartitionedSequenceKey(long sequence, K partitionKey) {
        this.sequence = sequence;
        this.partitionKey = partitionKey;
    }

    public long getSequence() {
        return sequence;
    }

    public K getKey() {
        return partitionKey;
    }

    @Override
    public K getPartitionKey() {
        return partitionKey;
    }

    @Override
    public int compareTo(PartitionedSequenceKey<K> other) {
        int bySequence = Long.compare(sequence, other.sequence);
        if (bySequence != 0) {
            return bySequence;
        }
        return String.valueOf(partitionKey).compareTo(String.valueOf(other.partitionKey));
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof PartitionedSequenceKey)) {
            return false;
        }
        PartitionedSequenceKey<?> that = (PartitionedSequenceKey<?>) o;
        return sequence == that.sequence && Objects.equals(partitionKey, that.partitionKey);
    }

    @Override
    public int hashCode() {
        return Objects.hash(sequence, partitionKey);
    }

    @Override
    public String toString() {
        return "PartitionedSequenceKey{sequence=" + sequence + ", partitionKey=" + partitionKey + "}";
    }
}

package io.github.hzsidecar.framework.samples;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * A Serializable sample holding JDK collections, an array and an enum. Hazelcast serializes an
 * ArrayList, a HashMap, a String[] or an enum at the top level with serializers of its own; inside
 * a Serializable they are Java-serialized (ArrayList and HashMap through their writeObject methods,
 * so the stream holds block data, the enum as TC_ENUM).
 */
public class CollectionsHolder implements Serializable {

    private static final long serialVersionUID = 9L;

    private final ArrayList<String> names;
    private final HashMap<String, Integer> counts;
    private final String[] tags;
    private final TimeUnit unit;

    public CollectionsHolder(ArrayList<String> names, HashMap<String, Integer> counts, String[] tags, TimeUnit unit) {
        this.names = names;
        this.counts = counts;
        this.tags = tags;
        this.unit = unit;
    }

    public ArrayList<String> getNames() {
        return names;
    }

    public HashMap<String, Integer> getCounts() {
        return counts;
    }

    public String[] getTags() {
        return tags.clone();
    }

    public TimeUnit getUnit() {
        return unit;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof CollectionsHolder)) {
            return false;
        }
        CollectionsHolder that = (CollectionsHolder) o;
        return Objects.equals(names, that.names) && Objects.equals(counts, that.counts)
                && java.util.Arrays.equals(tags, that.tags) && unit == that.unit;
    }

    @Override
    public int hashCode() {
        return Objects.hash(names, counts, java.util.Arrays.hashCode(tags), unit);
    }
}

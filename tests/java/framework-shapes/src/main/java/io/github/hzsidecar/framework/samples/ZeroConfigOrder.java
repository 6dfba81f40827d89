package io.github.hzsidecar.framework.samples;

import java.util.Arrays;
import java.util.Objects;

/**
 * A zero-config Compact sample: no serializer is registered anywhere, so Hazelcast's reflective
 * serializer writes it under its class name, its fields in declaration order (zeta, count, alpha,
 * middle, nested), which is not the schema's (alphabetical) order. Not Serializable on purpose: a
 * Serializable class would be Java-serialized instead.
 */
public final class ZeroConfigOrder {

    private String zeta;
    private long count;
    private String alpha;
    private int[] middle;
    private ZeroConfigPart nested;

    /** For the reflective serializer. */
    public ZeroConfigOrder() {
    }

    public ZeroConfigOrder(String zeta, long count, String alpha, int[] middle, ZeroConfigPart nested) {
        this.zeta = zeta;
        this.count = count;
        this.alpha = alpha;
        this.middle = middle;
        this.nested = nested;
    }

    public String getZeta() {
        return zeta;
    }

    public long getCount() {
        return count;
    }

    public String getAlpha() {
        return alpha;
    }

    public int[] getMiddle() {
        return middle;
    }

    public ZeroConfigPart getNested() {
        return nested;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof ZeroConfigOrder)) {
            return false;
        }
        ZeroConfigOrder that = (ZeroConfigOrder) o;
        return count == that.count && Objects.equals(zeta, that.zeta) && Objects.equals(alpha, that.alpha)
                && Arrays.equals(middle, that.middle) && Objects.equals(nested, that.nested);
    }

    @Override
    public int hashCode() {
        return Objects.hash(zeta, count, alpha, Arrays.hashCode(middle), nested);
    }

    @Override
    public String toString() {
        return "ZeroConfigOrder{zeta=" + zeta + ", count=" + count + ", alpha=" + alpha + ", middle="
                + Arrays.toString(middle) + ", nested=" + nested + "}";
    }
}

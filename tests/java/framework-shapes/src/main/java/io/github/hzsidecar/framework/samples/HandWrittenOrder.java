package io.github.hzsidecar.framework.samples;

import java.util.Arrays;
import java.util.Objects;

/**
 * A Compact sample with a hand-written serializer ({@link HandWrittenOrderSerializer}) that writes
 * its variable-size fields in an order of its own (zeta, alpha, middle, nested), not in the schema's
 * (alphabetical) order: the Compact bytes keep that order, only the offset table is by name.
 */
public final class HandWrittenOrder {

    private final String zeta;
    private final String alpha;
    private final long count;
    private final int[] middle;
    private final HandWrittenPart nested;

    public HandWrittenOrder(String zeta, String alpha, long count, int[] middle, HandWrittenPart nested) {
        this.zeta = zeta;
        this.alpha = alpha;
        this.count = count;
        this.middle = middle;
        this.nested = nested;
    }

    public String getZeta() {
        return zeta;
    }

    public String getAlpha() {
        return alpha;
    }

    public long getCount() {
        return count;
    }

    public int[] getMiddle() {
        return middle;
    }

    public HandWrittenPart getNested() {
        return nested;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof HandWrittenOrder)) {
            return false;
        }
        HandWrittenOrder that = (HandWrittenOrder) o;
        return count == that.count && Objects.equals(zeta, that.zeta) && Objects.equals(alpha, that.alpha)
                && Arrays.equals(middle, that.middle) && Objects.equals(nested, that.nested);
    }

    @Override
    public int hashCode() {
        return Objects.hash(zeta, alpha, count, Arrays.hashCode(middle), nested);
    }

    @Override
    public String toString() {
        return "HandWrittenOrder{zeta=" + zeta + ", alpha=" + alpha + ", count=" + count + ", middle="
                + Arrays.toString(middle) + ", nested=" + nested + "}";
    }
}

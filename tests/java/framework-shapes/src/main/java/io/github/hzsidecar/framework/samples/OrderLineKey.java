package io.github.hzsidecar.framework.samples;

import java.io.Serializable;
import java.util.Objects;

/**
 * A Serializable sample with one field of each primitive type, a String and a boxed Integer
 * (nullable), for Java-serialization codec test vectors. Default serialization only.
 */
public class OrderLineKey implements Serializable {

    private static final long serialVersionUID = 7L;

    private final String region;
    private final int number;
    private final long placedAt;
    private final boolean priority;
    private final double weight;
    private final Integer boxedQty;
    private final char grade;
    private final short shortValue;
    private final byte byteValue;
    private final float floatValue;

    public OrderLineKey(String region, int number, long placedAt, boolean priority, double weight,
                        Integer boxedQty, char grade, short shortValue, byte byteValue, float floatValue) {
        this.region = region;
        this.number = number;
        this.placedAt = placedAt;
        this.priority = priority;
        this.weight = weight;
        this.boxedQty = boxedQty;
        this.grade = grade;
        this.shortValue = shortValue;
        this.byteValue = byteValue;
        this.floatValue = floatValue;
    }

    public String getRegion() {
        return region;
    }

    public int getNumber() {
        return number;
    }

    public long getPlacedAt() {
        return placedAt;
    }

    public boolean isPriority() {
        return priority;
    }

    public double getWeight() {
        return weight;
    }

    public Integer getBoxedQty() {
        return boxedQty;
    }

    public char getGrade() {
        return grade;
    }

    public short getShortValue() {
        return shortValue;
    }

    public byte getByteValue() {
        return byteValue;
    }

    public float getFloatValue() {
        return floatValue;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (o == null || getClass() != o.getClass()) {
            return false;
        }
        OrderLineKey that = (OrderLineKey) o;
        return number == that.number && placedAt == that.placedAt && priority == that.priority
                && Double.compare(weight, that.weight) == 0 && grade == that.grade
                && shortValue == that.shortValue && byteValue == that.byteValue
                && Float.compare(floatValue, that.floatValue) == 0
                && Objects.equals(region, that.region) && Objects.equals(boxedQty, that.boxedQty);
    }

    @Override
    public int hashCode() {
        return Objects.hash(region, number, placedAt, priority, weight, boxedQty, grade, shortValue,
                byteValue, floatValue);
    }
}

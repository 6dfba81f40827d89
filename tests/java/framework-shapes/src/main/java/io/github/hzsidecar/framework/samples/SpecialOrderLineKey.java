package io.github.hzsidecar.framework.samples;

import java.util.Objects;

/** A Serializable subclass: its stream carries the class descriptors of both classes. */
public class SpecialOrderLineKey extends OrderLineKey {

    private static final long serialVersionUID = 8L;

    private final String channel;

    public SpecialOrderLineKey(String region, int number, long placedAt, boolean priority, double weight,
                               Integer boxedQty, char grade, short shortValue, byte byteValue, float floatValue,
                               String channel) {
        super(region, number, placedAt, priority, weight, boxedQty, grade, shortValue, byteValue, floatValue);
        this.channel = channel;
    }

    public String getChannel() {
        return channel;
    }

    @Override
    public boolean equals(Object o) {
        return super.equals(o) && Objects.equals(channel, ((SpecialOrderLineKey) o).channel);
    }

    @Override
    public int hashCode() {
        return 31 * super.hashCode() + Objects.hashCode(channel);
    }
}

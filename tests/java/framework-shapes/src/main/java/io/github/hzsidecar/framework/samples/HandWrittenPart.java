package io.github.hzsidecar.framework.samples;

import java.util.Objects;

/** The nested record of {@link HandWrittenOrder}: its serializer writes label before code. */
public final class HandWrittenPart {

    private final String label;
    private final int weight;
    private final String code;

    public HandWrittenPart(String label, int weight, String code) {
        this.label = label;
        this.weight = weight;
        this.code = code;
    }

    public String getLabel() {
        return label;
    }

    public int getWeight() {
        return weight;
    }

    public String getCode() {
        return code;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof HandWrittenPart)) {
            return false;
        }
        HandWrittenPart that = (HandWrittenPart) o;
        return weight == that.weight && Objects.equals(label, that.label) && Objects.equals(code, that.code);
    }

    @Override
    public int hashCode() {
        return Objects.hash(label, weight, code);
    }

    @Override
    public String toString() {
        return "HandWrittenPart{label=" + label + ", weight=" + weight + ", code=" + code + "}";
    }
}

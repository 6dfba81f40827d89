package io.github.hzsidecar.framework.samples;

import com.hazelcast.nio.serialization.compact.CompactReader;
import com.hazelcast.nio.serialization.compact.CompactSerializer;
import com.hazelcast.nio.serialization.compact.CompactWriter;

/**
 * Writes {@link HandWrittenOrder} as the Compact type {@value #TYPE_NAME} in call order zeta, alpha,
 * count (fixed-size), middle, nested: the variable-size data is not in name order.
 */
public final class HandWrittenOrderSerializer implements CompactSerializer<HandWrittenOrder> {

    /** Not a class name, so a member without this serializer sees a GenericRecord. */
    public static final String TYPE_NAME = "WriteOrderHandWritten";

    @Override
    public HandWrittenOrder read(CompactReader reader) {
        return new HandWrittenOrder(
                reader.readString("zeta"),
                reader.readString("alpha"),
                reader.readInt64("count"),
                reader.readArrayOfInt32("middle"),
                reader.readCompact("nested"));
    }

    @Override
    public void write(CompactWriter writer, HandWrittenOrder value) {
        writer.writeString("zeta", value.getZeta());
        writer.writeString("alpha", value.getAlpha());
        writer.writeInt64("count", value.getCount());
        writer.writeArrayOfInt32("middle", value.getMiddle());
        writer.writeCompact("nested", value.getNested());
    }

    @Override
    public String getTypeName() {
        return TYPE_NAME;
    }

    @Override
    public Class<HandWrittenOrder> getCompactClass() {
        return HandWrittenOrder.class;
    }
}

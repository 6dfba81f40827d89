package io.github.hzsidecar.framework.samples;

import com.hazelcast.nio.serialization.compact.CompactReader;
import com.hazelcast.nio.serialization.compact.CompactSerializer;
import com.hazelcast.nio.serialization.compact.CompactWriter;

/** Writes {@link HandWrittenPart} as {@value #TYPE_NAME}: label, weight, code (code sorts first). */
public final class HandWrittenPartSerializer implements CompactSerializer<HandWrittenPart> {

    public static final String TYPE_NAME = "WriteOrderHandWrittenPart";

    @Override
    public HandWrittenPart read(CompactReader reader) {
        return new HandWrittenPart(reader.readString("label"), reader.readInt32("weight"), reader.readString("code"));
    }

    @Override
    public void write(CompactWriter writer, HandWrittenPart value) {
        writer.writeString("label", value.getLabel());
        writer.writeInt32("weight", value.getWeight());
        writer.writeString("code", value.getCode());
    }

    @Override
    public String getTypeName() {
        return TYPE_NAME;
    }

    @Override
    public Class<HandWrittenPart> getCompactClass() {
        return HandWrittenPart.class;
    }
}

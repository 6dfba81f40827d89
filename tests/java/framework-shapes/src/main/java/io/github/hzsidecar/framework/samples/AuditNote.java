package io.github.hzsidecar.framework.samples;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;
import java.util.Objects;

/** An Externalizable sample: its stream carries no field names, only what writeExternal writes. */
public class AuditNote implements Externalizable {

    private static final long serialVersionUID = 1L;

    private String author;
    private long at;

    public AuditNote() {
    }

    public AuditNote(String author, long at) {
        this.author = author;
        this.at = at;
    }

    public String getAuthor() {
        return author;
    }

    public long getAt() {
        return at;
    }

    @Override
    public void writeExternal(ObjectOutput out) throws IOException {
        out.writeUTF(author);
        out.writeLong(at);
    }

    @Override
    public void readExternal(ObjectInput in) throws IOException {
        author = in.readUTF();
        at = in.readLong();
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof AuditNote)) {
            return false;
        }
        AuditNote that = (AuditNote) o;
        return at == that.at && Objects.equals(author, that.author);
    }

    @Override
    public int hashCode() {
        return Objects.hash(author, at);
    }
}

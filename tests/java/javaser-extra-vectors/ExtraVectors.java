package dev;

import com.hazelcast.config.SerializationConfig;
import com.hazelcast.internal.serialization.Data;
import com.hazelcast.internal.serialization.SerializationService;
import com.hazelcast.internal.serialization.impl.DefaultSerializationServiceBuilder;
import com.hazelcast.partition.strategy.DefaultPartitioningStrategy;
import com.theyawns.framework.store.PartitionedSequenceKey;
import java.io.*;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.util.*;

/**
 * Writes tests/unit/codec/java_serialization_extra_vectors.json: Java-serialization shapes beyond the
 * framework's (hierarchies with hidden fields, writeObject data, Externalizable with objects and a
 * reset, proxies, cycles, odd strings, gzip), each as the Data a member-side serialization service
 * writes (the member's SerializationConfig and partitioning strategy; compression on for "-gzip").
 *
 * <p>Run (Java 17, Hazelcast 5.7.0 from the local Maven repository):
 * <pre>
 * HZ=~/.m2/repository/com/hazelcast/hazelcast/5.7.0/hazelcast-5.7.0.jar
 * javac -d /tmp/extra -cp $HZ tests/java/javaser-extra-vectors/ExtraVectors.java \
 *     tests/java/framework-shapes/src/main/java/com/theyawns/framework/store/PartitionedSequenceKey.java
 * java -cp /tmp/extra:$HZ dev.ExtraVectors tests/unit/codec/java_serialization_extra_vectors.json
 * </pre>
 * The class names (dev.ExtraVectors$...) are part of the vectors: keep the package.
 */
public class ExtraVectors {
  public enum Color { RED, GREEN { @Override public String toString() { return "g"; } } }
  public static class Base implements Serializable { private static final long serialVersionUID = 7L; int x = 1; String name = "base"; }
  public static class Derived extends Base { private static final long serialVersionUID = 8L;
    int x = 2; double d = Double.NaN; float f = -0.0f; char c = 'é'; boolean z = true; byte b = -5; short s = 300; long j = Long.MIN_VALUE; }
  public static class OneWriter implements Serializable { private static final long serialVersionUID = 1L; int a = 3; transient int t = 9;
    private void writeObject(ObjectOutputStream out) throws IOException { out.defaultWriteObject(); out.writeInt(42); out.writeObject("extra"); out.writeInt(43); out.writeUTF("u"); } }
  public static class TwoWriters extends OneWriter { private static final long serialVersionUID = 2L; int b = 4;
    private void writeObject(ObjectOutputStream out) throws IOException { out.defaultWriteObject(); out.writeLong(7); } }
  public static class Ext implements Externalizable { private static final long serialVersionUID = 1L;
    public Ext() {}
    public void writeExternal(ObjectOutput out) throws IOException { out.writeInt(5); out.writeObject(Color.RED); out.writeUTF("hi"); }
    public void readExternal(ObjectInput in) {} }
  public static class ExtReset implements Externalizable { private static final long serialVersionUID = 1L;
    public ExtReset() {}
    public void writeExternal(ObjectOutput out) throws IOException { Base b = new Base(); out.writeObject(b); ((ObjectOutputStream) out).reset(); out.writeObject(b); out.writeObject(b); }
    public void readExternal(ObjectInput in) {} }
  public static class Holder implements Serializable { private static final long serialVersionUID = 3L;
    Color color = Color.GREEN; int[] ints = {1, 2, -3}; byte[] bytes = {1, 2, 3}; String[] strs = {"a", null, "a"};
    long[][] longs = {{1L}, {}}; char[] chars = {'x', 'é'}; short[] shorts = {-1}; boolean[] bools = {true, false};
    float[] floats = {Float.NaN, 1.1f}; double[] doubles = {Double.NEGATIVE_INFINITY, 0.1};
    Integer boxedI = 5; Long boxedL = -7L; Double boxedD = Double.POSITIVE_INFINITY; Float boxedF = 0.5f; Short boxedS = 2; Byte boxedB = 1;
    Boolean boxedZ = Boolean.TRUE; Character boxedC = 'q'; Object nul = null; Class<?> cls = String.class; Class<?> arrCls = int[].class;
    Ext ext = new Ext(); List<Object> list = new ArrayList<>(List.of("one", 2)); Object[] objects = {1L, "s", null};
    Object shared = new Base(); Object sharedAgain = shared; }
  public static class Node implements Serializable { private static final long serialVersionUID = 4L; Node next; String v = "n"; }
  public static class Strs implements Serializable { private static final long serialVersionUID = 5L;
    String nul = "a\u0000b"; String astral = "x\uD83D\uDE00y"; String lone = "\uD800z"; char loneChar = '\uDC00'; String longStr = "é".repeat(32768); String empty = ""; }

  public static void main(String[] args) throws Exception {
    SerializationService member = new DefaultSerializationServiceBuilder().setConfig(new SerializationConfig())
        .setPartitioningStrategy(new DefaultPartitioningStrategy()).build();
    SerializationConfig compressed = new SerializationConfig().setEnableCompression(true);
    SerializationService gzip = new DefaultSerializationServiceBuilder().setConfig(compressed).setEnableCompression(true)
        .setPartitioningStrategy(new DefaultPartitioningStrategy()).build();
    Node cycle = new Node(); cycle.next = cycle;
    Object proxy = Proxy.newProxyInstance(ExtraVectors.class.getClassLoader(), new Class<?>[]{Serializable.class, Runnable.class},
        (InvocationHandler & Serializable) (p, m, a) -> null);
    Object[][] items = {
        {"derived", member, new Derived()}, {"two-writers", member, new TwoWriters()}, {"one-writer", member, new OneWriter()},
        {"holder", member, new Holder()}, {"cycle", member, cycle}, {"strings", member, new Strs()},
        {"externalizable-with-objects", member, new Ext()}, {"externalizable-with-reset", member, new ExtReset()},
        {"proxy", member, proxy},
        {"psk-gzip", gzip, new PartitionedSequenceKey<>(5L, "order-1")}, {"externalizable-gzip", gzip, new Ext()},
        {"holder-gzip", gzip, new Holder()},
    };
    StringBuilder sb = new StringBuilder("[\n");
    for (int i = 0; i < items.length; i++) {
      Data d = ((SerializationService) items[i][1]).toData(items[i][2]);
      sb.append("  {\"name\": \"").append(items[i][0]).append("\", \"typeId\": ").append(d.getType())
        .append(", \"dataHex\": \"").append(HexFormat.of().formatHex(d.toByteArray())).append("\"}").append(i + 1 < items.length ? ",\n" : "\n");
    }
    sb.append("]\n");
    try (Writer w = new FileWriter(args[0])) { w.write(sb.toString()); }
  }
}

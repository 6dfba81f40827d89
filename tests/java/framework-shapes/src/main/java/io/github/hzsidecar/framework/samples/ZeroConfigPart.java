package io.github.hzsidecar.framework.samples;

/**
 * The nested record of {@link ZeroConfigOrder}, a Java record: zero-config Compact writes its
 * components in declaration order (label, weight, code; code sorts first).
 */
public record ZeroConfigPart(String label, int weight, String code) {
}

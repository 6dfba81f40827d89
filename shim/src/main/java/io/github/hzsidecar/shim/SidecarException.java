package io.github.hzsidecar.shim;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;

import java.util.EnumMap;
import java.util.Map;

/**
 * A MapStore/MapLoader call the sidecar did not complete. The message names the map, the operation, the
 * number of entries and the sidecar's own message; {@link #code()} is the gRPC status behind it.
 *
 * <p>Hazelcast treats every exception alike (write-behind keeps the entries and retries, write-through
 * fails the caller's operation); the subclasses tell an operator which kind of failure it is. A
 * {@link Rejected} one is never worth retrying: {@link SidecarMapStore} takes such entries off the
 * write-behind queue itself (README, "Errors").
 */
public class SidecarException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final Status.Code code;

    SidecarException(Status.Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    /** The gRPC status code of the failure. */
    public Status.Code code() {
        return code;
    }

    /** Whether the same call may succeed later unchanged (the store or the sidecar was unavailable). */
    public boolean isRetriable() {
        return false;
    }

    /** The sidecar or its store is unavailable or too slow; retrying the same entries later may succeed. */
    public static class Unavailable extends SidecarException {
        private static final long serialVersionUID = 1L;

        Unavailable(Status.Code code, String message, Throwable cause) {
            super(code, message, cause);
        }

        @Override
        public boolean isRetriable() {
            return true;
        }
    }

    /**
     * The sidecar refused the data itself (undecodable, fingerprint mismatch, unsupported field kind, an entry
     * too large for any Load answer): the same call would be refused again.
     */
    public static class Rejected extends SidecarException {
        private static final long serialVersionUID = 1L;

        Rejected(Status.Code code, String message, Throwable cause) {
            super(code, message, cause);
        }
    }

    /** The member and the sidecar are not configured to work together (token, routing, schemas, version). */
    public static class Misconfigured extends SidecarException {
        private static final long serialVersionUID = 1L;

        Misconfigured(Status.Code code, String message, Throwable cause) {
            super(code, message, cause);
        }
    }

    private interface Factory {
        SidecarException create(Status.Code code, String message, Throwable cause);
    }

    /** Status code to exception kind and the hint appended to the sidecar's message: the whole mapping. */
    private record Kind(Factory factory, String hint) {
    }

    private static final Map<Status.Code, Kind> KINDS = new EnumMap<>(Status.Code.class);

    /**
     * Trailing metadata of a RESOURCE_EXHAUSTED that is no transient bound but one entry larger than any Load
     * answer may be (the sidecar's listen.max-message-bytes); its value is the bytes such an answer needs.
     */
    static final Metadata.Key<String> ENTRY_TOO_LARGE =
            Metadata.Key.of("hz-sidecar-entry-too-large", Metadata.ASCII_STRING_MARSHALLER);

    private static final Kind TOO_LARGE = new Kind(Rejected::new,
            "not retriable: one entry is larger than the sidecar's listen.max-message-bytes allows; raise it");

    static {
        Kind unavailable = new Kind(Unavailable::new, "retriable");
        KINDS.put(Status.Code.UNAVAILABLE, unavailable);
        KINDS.put(Status.Code.DEADLINE_EXCEEDED, new Kind(Unavailable::new,
                "retriable; raise " + SidecarSettings.DEADLINE_MS + " if the store is merely slow"));
        KINDS.put(Status.Code.INTERNAL, unavailable);
        KINDS.put(Status.Code.RESOURCE_EXHAUSTED, unavailable);
        KINDS.put(Status.Code.ABORTED, unavailable);
        KINDS.put(Status.Code.CANCELLED, unavailable);
        KINDS.put(Status.Code.UNKNOWN, unavailable);
        Kind rejected = new Kind(Rejected::new, "not retriable: the data was refused");
        KINDS.put(Status.Code.INVALID_ARGUMENT, rejected);
        KINDS.put(Status.Code.OUT_OF_RANGE, rejected);
        KINDS.put(Status.Code.DATA_LOSS, rejected);
        KINDS.put(Status.Code.UNAUTHENTICATED, new Kind(Misconfigured::new,
                "configuration error: " + SidecarSettings.TOKEN + " does not match the sidecar's token"));
        KINDS.put(Status.Code.PERMISSION_DENIED, new Kind(Misconfigured::new,
                "configuration error: the sidecar denied this member"));
        // The shim always sends every schema its values use, so an unknown schema id is not fixable by a
        // resend; the other cause is a map that the sidecar's configuration does not route.
        KINDS.put(Status.Code.FAILED_PRECONDITION, new Kind(Misconfigured::new,
                "configuration error: check the sidecar's map routes and schemas"));
        KINDS.put(Status.Code.UNIMPLEMENTED, new Kind(Misconfigured::new,
                "configuration error: the sidecar does not serve hzsidecar.v1.MapStore at this address"));
        KINDS.put(Status.Code.NOT_FOUND, new Kind(Misconfigured::new, "configuration error"));
        KINDS.put(Status.Code.ALREADY_EXISTS, new Kind(Misconfigured::new, "configuration error"));
    }

    /**
     * The exception for a failed call.
     *
     * @param status    the call's status (not OK)
     * @param mapName   the IMap the call was for
     * @param operation the MapStore/MapLoader operation, e.g. {@code storeAll}
     * @param count     how many entries or keys the call carried
     * @param cause     the gRPC exception, kept as the cause
     */
    static SidecarException of(Status status, String mapName, String operation, int count, Throwable cause) {
        return of(status, KINDS.getOrDefault(status.getCode(), new Kind(SidecarException::new, "unexpected status")),
                mapName, operation, count, cause);
    }

    private static SidecarException of(Status status, Kind kind, String mapName, String operation, int count,
                                       Throwable cause) {
        String sidecarMessage = status.getDescription() == null ? "(no message)" : status.getDescription();
        if (status.getCause() != null) {
            // Set by the client side (e.g. "io exception" caused by "connection refused"): the useful part.
            sidecarMessage += " (" + status.getCause() + ")";
        }
        String message = String.format("hz-sidecar %s of %d entr%s for map '%s' failed with %s: %s [%s]",
                operation, count, count == 1 ? "y" : "ies", mapName, status.getCode(), sidecarMessage, kind.hint());
        return kind.factory().create(status.getCode(), message, cause);
    }

    static SidecarException of(StatusRuntimeException e, String mapName, String operation, int count) {
        Metadata trailers = e.getTrailers();
        if (e.getStatus().getCode() == Status.Code.RESOURCE_EXHAUSTED && trailers != null
                && trailers.containsKey(ENTRY_TOO_LARGE)) {
            return of(e.getStatus(), TOO_LARGE, mapName, operation, count, e);
        }
        return of(e.getStatus(), mapName, operation, count, e);
    }
}

package io.github.hzsidecar.shim;

import java.util.Objects;

/**
 * Where the sidecar listens: a Unix domain socket ({@code unix:///run/hz-sidecar.sock}, the default in a
 * Kubernetes pod) or a TCP endpoint ({@code host:port}, {@code [::1]:port}).
 */
record SidecarAddress(String unixPath, String host, int port) {

    private static final String UNIX_SCHEME = "unix:";

    SidecarAddress {
        if ((unixPath == null) == (host == null)) {
            throw new IllegalArgumentException("an address is either a Unix socket path or a host and port");
        }
    }

    static SidecarAddress parse(String text) {
        Objects.requireNonNull(text, "address");
        String value = text.strip();
        if (value.startsWith(UNIX_SCHEME)) {
            // unix:///abs/path (URI form, empty authority) or unix:/abs/path; as in gRPC's own naming doc.
            String path = value.substring(UNIX_SCHEME.length());
            if (path.startsWith("//")) {
                path = path.substring(2);
            }
            if (!path.startsWith("/")) {
                throw invalid(text, "a Unix socket address must be an absolute path, e.g. unix:///run/hz-sidecar.sock");
            }
            return new SidecarAddress(path, null, 0);
        }
        int colon = value.lastIndexOf(':');
        if (colon <= 0 || colon == value.length() - 1) {
            throw invalid(text, "expected unix:///path/to.sock or host:port");
        }
        String host = value.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        } else if (host.contains(":")) {
            throw invalid(text, "an IPv6 host must be bracketed, e.g. [::1]:50051");
        }
        int port;
        try {
            port = Integer.parseInt(value.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw invalid(text, "the port is not a number");
        }
        if (host.isEmpty() || port < 1 || port > 65535) {
            throw invalid(text, "expected host:port with a port in 1..65535");
        }
        return new SidecarAddress(null, host, port);
    }

    boolean isUnixSocket() {
        return unixPath != null;
    }

    @Override
    public String toString() {
        if (isUnixSocket()) {
            return "unix://" + unixPath;
        }
        return host.contains(":") ? "[" + host + "]:" + port : host + ":" + port;
    }

    private static IllegalArgumentException invalid(String text, String why) {
        return new IllegalArgumentException(
                "Invalid " + SidecarSettings.ADDRESS + " '" + text + "': " + why);
    }
}

package io.kiln.sdk;

import java.util.List;

/**
 * The coordinator answered with a non-2xx status. Carries the HTTP status and the server's
 * {@code {"error": ..., "details": [...]}} body (see docs/api.md, "Errors").
 */
public class KilnApiException extends KilnException {
    private final int status;
    private final String error;
    private final List<String> details;

    public KilnApiException(int status, String error, List<String> details) {
        super(format(status, error, details));
        this.status = status;
        this.error = error;
        this.details = details == null ? List.of() : List.copyOf(details);
    }

    private static String format(int status, String error, List<String> details) {
        StringBuilder sb = new StringBuilder().append(error).append(" (HTTP ").append(status).append(')');
        if (details != null && !details.isEmpty()) {
            sb.append(": ").append(String.join("; ", details));
        }
        return sb.toString();
    }

    /** HTTP status, e.g. 400, 401, 404, 409, 503. */
    public int status() {
        return status;
    }

    /** The server's one-line summary ({@code error}). */
    public String error() {
        return error;
    }

    /** The server's {@code details} (one per bad field for a 400); empty when absent. */
    public List<String> details() {
        return details;
    }
}

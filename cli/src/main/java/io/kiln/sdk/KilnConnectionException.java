package io.kiln.sdk;

/** The coordinator could not be reached (nothing listens, timeout, connection lost). */
public class KilnConnectionException extends KilnException {
    private final String apiUrl;

    public KilnConnectionException(String apiUrl, String message, Throwable cause) {
        super(message, cause);
        this.apiUrl = apiUrl;
    }

    /** The base URL that was tried, e.g. {@code http://127.0.0.1:7480}. */
    public String apiUrl() {
        return apiUrl;
    }
}

package io.kiln.sdk;

/** Base of every error the SDK raises (unchecked). */
public class KilnException extends RuntimeException {
    public KilnException(String message) {
        super(message);
    }

    public KilnException(String message, Throwable cause) {
        super(message, cause);
    }
}

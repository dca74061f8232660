package io.kiln.cli;

/** A usage problem found after parsing (exit code 2, no stack trace). */
public class UsageException extends RuntimeException {
    public UsageException(String message) {
        super(message);
    }
}

package io.kiln.cli.spec;

/** A job file or a flag cannot become a JobSpec (the CLI exits 2 on it). */
public class JobSpecException extends RuntimeException {
    public JobSpecException(String message) {
        super(message);
    }

    public JobSpecException(String message, Throwable cause) {
        super(message, cause);
    }
}

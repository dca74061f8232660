package io.kiln.cli.local;

import java.nio.file.Path;

/** A local cluster could not be started, reached or stopped; may carry the tail of a node's log. */
public class LocalClusterException extends RuntimeException {
    private final Path logFile;
    private final String logTail;

    public LocalClusterException(String message) {
        this(message, null, null, null);
    }

    public LocalClusterException(String message, Throwable cause) {
        this(message, null, null, cause);
    }

    public LocalClusterException(String message, Path logFile, String logTail, Throwable cause) {
        super(withTail(message, logFile, logTail), cause);
        this.logFile = logFile;
        this.logTail = logTail;
    }

    private static String withTail(String message, Path logFile, String tail) {
        if (logFile == null || tail == null || tail.isBlank()) {
            return message + (logFile == null ? "" : "\n(log: " + logFile + ")");
        }
        return message + "\n--- last lines of " + logFile + " ---\n" + tail.stripTrailing() + "\n---";
    }

    /** The log file that explains the failure, or null. */
    public Path logFile() {
        return logFile;
    }

    /** Its last lines (from the latest start), or null. */
    public String logTail() {
        return logTail;
    }
}

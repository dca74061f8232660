package io.kiln.sdk;

import java.util.Set;

/** The job statuses of docs/api.md and which of them are final. */
public final class JobStatus {
    public static final String PENDING = "Pending";
    public static final String SCHEDULED = "Scheduled";
    public static final String RUNNING = "Running";
    public static final String STOPPING = "Stopping";
    public static final String COMPLETED = "Completed";
    public static final String FAILED = "Failed";
    public static final String STOPPED = "Stopped";

    private static final Set<String> FINAL = Set.of(COMPLETED, FAILED, STOPPED);

    private JobStatus() {
    }

    /** Completed, Failed and Stopped are final. */
    public static boolean isFinal(String status) {
        return status != null && FINAL.contains(status);
    }
}

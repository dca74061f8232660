package io.kiln.cli;

/** The exit codes of {@code kiln}. */
public final class ExitCodes {
    /** Success (a followed job Completed). */
    public static final int OK = 0;
    /** A followed job ended Failed or Stopped (also: an unexpected internal error). */
    public static final int JOB_FAILED = 1;
    /** Bad command line, bad job file, missing prerequisite (e.g. the demo dataset). */
    public static final int USAGE = 2;
    /** The API answered an error, or the coordinator / local cluster could not be reached or started. */
    public static final int API = 3;

    private ExitCodes() {
    }
}

package io.kiln.worker.checkpoint;

import java.io.IOException;

/**
 * A checkpoint cannot be found, read or used: missing, incomplete (no {@code checkpoint.json}),
 * corrupt (size or CRC32 mismatch), or incompatible with the job that wants to resume from it. The
 * message names the URI or file and the problem.
 */
public final class CheckpointException extends IOException {
  public CheckpointException(String message) {
    super(message);
  }

  public CheckpointException(String message, Throwable cause) {
    super(message, cause);
  }
}

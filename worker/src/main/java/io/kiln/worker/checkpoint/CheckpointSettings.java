package io.kiln.worker.checkpoint;

import io.kiln.protocol.proto.CheckpointConfig;
import io.kiln.protocol.proto.JobSpec;

/**
 * A job's {@code spec.checkpoint}: every how many global steps to checkpoint (0 = only at epoch
 * ends), how many checkpoints to keep, and where to resume from (blank = start fresh).
 */
public record CheckpointSettings(long everySteps, int keep, String resumeFrom) {
  public static final int DEFAULT_KEEP = 3;

  public CheckpointSettings {
    if (everySteps < 0) throw new IllegalArgumentException("checkpoint.every_steps must be >= 0, got " + everySteps);
    if (keep < 0) throw new IllegalArgumentException("checkpoint.keep must be >= 0, got " + keep);
    if (keep == 0) keep = DEFAULT_KEEP;
    resumeFrom = resumeFrom == null ? "" : resumeFrom.trim();
  }

  public static CheckpointSettings defaults() {
    return new CheckpointSettings(0, DEFAULT_KEEP, "");
  }

  /** Parses {@code spec.checkpoint}; a bad value fails with an {@link IllegalArgumentException} naming the field. */
  public static CheckpointSettings fromSpec(JobSpec spec) {
    if (!spec.hasCheckpoint()) return defaults();
    CheckpointConfig c = spec.getCheckpoint();
    return new CheckpointSettings(c.getEverySteps(), c.getKeep(), c.getResumeFrom());
  }

  public boolean resumes() {
    return !resumeFrom.isEmpty();
  }
}

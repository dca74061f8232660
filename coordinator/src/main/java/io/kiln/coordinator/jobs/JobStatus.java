package io.kiln.coordinator.jobs;

/** A training job's lifecycle. Completed, Failed and Stopped are final. */
public enum JobStatus {
  /** Not yet submitted (the entity exists but has no events). */
  New,
  /** Submitted and waiting for free workers. */
  Pending,
  /** Workers chosen; tasks being started. */
  Scheduled,
  Running,
  /** A stop was requested; waiting for the workers to confirm. */
  Stopping,
  Completed,
  Failed,
  Stopped;

  public boolean isFinal() {
    return this == Completed || this == Failed || this == Stopped;
  }
}

package io.kiln.coordinator.tuning;

/** Lifecycle of a tuning job. */
public enum TuningStatus {
  New, Running, Stopping, Completed, Stopped, Failed;

  public boolean isFinal() {
    return this == Completed || this == Stopped || this == Failed;
  }
}

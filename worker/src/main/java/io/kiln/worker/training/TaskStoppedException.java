package io.kiln.worker.training;

/** Training was stopped on request (StopTask, worker shutdown); the message is the reason. */
public final class TaskStoppedException extends RuntimeException {
  public TaskStoppedException(String reason) {
    super(reason, null, false, false);
  }
}

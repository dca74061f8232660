package io.kiln.worker.training;

/** A cancellation flag the training thread checks between steps; set from any thread. */
public final class StopSignal {
  private volatile String reason;

  /** Requests a stop; the first reason wins. */
  public synchronized void stop(String why) {
    if (reason == null) reason = why == null || why.isBlank() ? "no reason given" : why;
  }

  public boolean isStopped() {
    return reason != null;
  }

  /** Null while not stopped. */
  public String reason() {
    return reason;
  }

  /** Throws {@link TaskStoppedException} if a stop was requested. */
  public void check() {
    String r = reason;
    if (r != null) throw new TaskStoppedException(r);
  }
}

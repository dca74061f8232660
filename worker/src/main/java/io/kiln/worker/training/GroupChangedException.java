package io.kiln.worker.training;

import java.util.List;

/** The data-parallel group broke (a peer died or timed out) or must change; the step is dropped. */
public final class GroupChangedException extends Exception {
  private static final long serialVersionUID = 1L;
  private final List<String> suspects;

  public GroupChangedException(String message, List<String> suspects, Throwable cause) {
    super(message, cause);
    this.suspects = List.copyOf(suspects);
  }

  /** Task ids of the peers blamed (empty when none). */
  public List<String> suspects() {
    return suspects;
  }
}

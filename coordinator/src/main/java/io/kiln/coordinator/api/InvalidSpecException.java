package io.kiln.coordinator.api;

import java.util.List;

/** A job spec that cannot be accepted; {@link #details()} names each bad field. */
public final class InvalidSpecException extends Exception {
  private final List<String> details;

  public InvalidSpecException(String summary, List<String> details) {
    super(summary + (details.isEmpty() ? "" : ": " + String.join("; ", details)));
    this.details = List.copyOf(details);
  }

  public List<String> details() {
    return details;
  }
}

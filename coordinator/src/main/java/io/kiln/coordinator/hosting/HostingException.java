package io.kiln.coordinator.hosting;

/** A hosted process could not be placed or did not answer; the message says why. */
public final class HostingException extends RuntimeException {
  public HostingException(String message) {
    super(message, null, false, false);
  }
}

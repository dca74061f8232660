package io.kiln.coordinator.registry;

/**
 * A registry request that cannot be done, and why; {@link #kind} says which HTTP status the API
 * answers (400, 404 or 409). Replies carry it whole: the registry and its callers share a JVM.
 */
public final class RegistryException extends RuntimeException {
  public enum Kind { INVALID, NOT_FOUND, CONFLICT }

  private final Kind kind;

  public RegistryException(Kind kind, String message) {
    super(message, null, false, false);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }

  static RegistryException invalid(String message) {
    return new RegistryException(Kind.INVALID, message);
  }

  static RegistryException notFound(String message) {
    return new RegistryException(Kind.NOT_FOUND, message);
  }
}

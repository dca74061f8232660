package io.kiln.coordinator.endpoints;

/** A refused endpoint request; the REST API maps the kind to 400 / 404 / 409. */
public final class EndpointException extends RuntimeException {
  public enum Kind { INVALID, NOT_FOUND, CONFLICT }

  private final Kind kind;

  public EndpointException(Kind kind, String message) {
    super(message, null, false, false);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }

  public static EndpointException invalid(String message) {
    return new EndpointException(Kind.INVALID, message);
  }

  public static EndpointException notFound(String message) {
    return new EndpointException(Kind.NOT_FOUND, message);
  }

  public static EndpointException conflict(String message) {
    return new EndpointException(Kind.CONFLICT, message);
  }
}

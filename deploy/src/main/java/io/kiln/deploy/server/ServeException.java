package io.kiln.deploy.server;

/** A request the server refuses, with the HTTP status to answer and a message for the caller. */
public final class ServeException extends RuntimeException {
  private final int status;

  public ServeException(int status, String message) {
    super(message);
    this.status = status;
  }

  public int status() {
    return status;
  }

  static ServeException badRequest(String m) {
    return new ServeException(400, m);
  }

  static ServeException notFound(String m) {
    return new ServeException(404, m);
  }
}

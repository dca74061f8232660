package io.kiln.worker.data;

import java.io.IOException;

/** A dataset could not be read: the message names the file (or folder) and the problem. */
public final class DataException extends IOException {
  public DataException(String message) {
    super(message);
  }

  public DataException(String message, Throwable cause) {
    super(message, cause);
  }
}

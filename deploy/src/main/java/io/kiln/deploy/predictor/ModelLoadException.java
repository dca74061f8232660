package io.kiln.deploy.predictor;

import java.io.IOException;
import java.nio.file.Path;

/** A model folder that cannot be served: missing or corrupt file, unknown format. Names the file. */
public final class ModelLoadException extends IOException {
  public ModelLoadException(Path file, String problem) {
    super(file + ": " + problem);
  }

  public ModelLoadException(Path file, String problem, Throwable cause) {
    super(file + ": " + problem + (cause.getMessage() == null ? "" : " (" + cause.getMessage() + ")"), cause);
  }
}

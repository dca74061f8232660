package io.kiln.worker.script;

/** The script ended unsuccessfully; the message is the job's failure reason. */
public final class ScriptFailedException extends Exception {
  public ScriptFailedException(String reason) {
    super(reason);
  }
}

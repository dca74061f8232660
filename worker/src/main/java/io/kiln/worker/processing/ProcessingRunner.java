package io.kiln.worker.processing;

import com.typesafe.config.ConfigFactory;
import io.kiln.worker.script.ScriptRunner;
import io.kiln.worker.task.TaskRunner;

/**
 * Processing jobs (algorithm {@code processing}, docs/processing.md): a user's data-preparation code
 * under SageMaker Processing's contract, with script mode's sandbox and settings
 * ({@link ScriptRunner.Options}).
 */
public final class ProcessingRunner implements TaskRunner {
  private final ScriptRunner.Options options;

  /** For the {@link java.util.ServiceLoader}: settings from {@code ConfigFactory.load()} at each run. */
  public ProcessingRunner() {
    this(null);
  }

  public ProcessingRunner(ScriptRunner.Options options) {
    this.options = options;
  }

  @Override
  public String name() {
    return ProcessingSpec.ALGORITHM;
  }

  @Override
  public Outcome run(Context ctx) throws Exception {
    ScriptRunner.Options o = options != null ? options : ScriptRunner.Options.fromConfig(ConfigFactory.load());
    return new ProcessingExecution(ctx, o).run();
  }
}

package io.kiln.worker.training;

import io.kiln.protocol.proto.JobSpec;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The optimisation settings of one task, parsed from a JobSpec's hyperparameters and stopping
 * condition. Hyperparameters: {@code learning_rate} (0.05), {@code momentum} (0.9),
 * {@code batch_size} per rank (64), {@code epochs} (1), {@code seed} (0).
 *
 * @param maxSteps stop after this many optimizer steps (0 = no limit)
 * @param maxRuntimeSeconds stop training after this long (0 = no limit)
 * @param threads PyTorch intra-op threads (the task's cpus_per_worker; at least 1)
 */
public record TrainingConfig(int epochs, int batchSize, float learningRate, float momentum, long seed, long maxSteps,
    long maxRuntimeSeconds, int threads) {

  public static final int DEFAULT_EPOCHS = 1;
  public static final int DEFAULT_BATCH_SIZE = 64;
  public static final float DEFAULT_LEARNING_RATE = 0.05f;
  public static final float DEFAULT_MOMENTUM = 0.9f;

  public TrainingConfig {
    if (epochs < 1) throw new IllegalArgumentException("epochs must be >= 1");
    if (batchSize < 1) throw new IllegalArgumentException("batch_size must be >= 1");
    if (threads < 1) threads = 1;
    if (maxSteps < 0) throw new IllegalArgumentException("stopping.max_steps must be >= 0");
    if (maxRuntimeSeconds < 0) throw new IllegalArgumentException("stopping.max_runtime_seconds must be >= 0");
  }

  public static TrainingConfig defaults() {
    return new TrainingConfig(DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, DEFAULT_MOMENTUM, 0, 0, 0, 1);
  }

  /** Parses a job spec; malformed values fail with an {@link IllegalArgumentException} naming the field. */
  public static TrainingConfig fromSpec(JobSpec spec) {
    Map<String, String> hp = spec.getHyperparametersMap();
    int epochs = Hyperparameters.intValue(hp, "epochs", DEFAULT_EPOCHS, 1, 1000);
    int batch = Hyperparameters.intValue(hp, "batch_size", DEFAULT_BATCH_SIZE, 1, 65_536);
    float lr = Hyperparameters.floatValue(hp, "learning_rate", DEFAULT_LEARNING_RATE, 0f, 1000f);
    float momentum = DEFAULT_MOMENTUM;
    String m = hp.get("momentum");
    if (m != null && !m.isBlank()) {
      try {
        momentum = Float.parseFloat(m.trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("hyperparameter momentum: '" + m + "' is not a number");
      }
      if (!(momentum >= 0f && momentum < 1f)) {
        throw new IllegalArgumentException("hyperparameter momentum: " + m + " outside [0, 1)");
      }
    }
    long seed = Hyperparameters.longValue(hp, "seed", 0);
    int threads = spec.hasResources() && spec.getResources().getCpusPerWorker() > 0
        ? spec.getResources().getCpusPerWorker() : 1;
    long maxSteps = spec.hasStopping() ? spec.getStopping().getMaxSteps() : 0;
    long maxRuntime = spec.hasStopping() ? spec.getStopping().getMaxRuntimeSeconds() : 0;
    return new TrainingConfig(epochs, batch, lr, momentum, seed, maxSteps, maxRuntime, threads);
  }

  public TrainingConfig withEpochs(int e) {
    return new TrainingConfig(e, batchSize, learningRate, momentum, seed, maxSteps, maxRuntimeSeconds, threads);
  }

  public TrainingConfig withBatchSize(int b) {
    return new TrainingConfig(epochs, b, learningRate, momentum, seed, maxSteps, maxRuntimeSeconds, threads);
  }

  public TrainingConfig withThreads(int t) {
    return new TrainingConfig(epochs, batchSize, learningRate, momentum, seed, maxSteps, maxRuntimeSeconds, t);
  }

  public TrainingConfig withMaxSteps(long s) {
    return new TrainingConfig(epochs, batchSize, learningRate, momentum, seed, s, maxRuntimeSeconds, threads);
  }

  public TrainingConfig withMaxRuntimeSeconds(long s) {
    return new TrainingConfig(epochs, batchSize, learningRate, momentum, seed, maxSteps, s, threads);
  }

  /** The effective values as strings (recorded in model.json). */
  public Map<String, String> asHyperparameters() {
    Map<String, String> m = new LinkedHashMap<>();
    m.put("epochs", Integer.toString(epochs));
    m.put("batch_size", Integer.toString(batchSize));
    m.put("learning_rate", Float.toString(learningRate));
    m.put("momentum", Float.toString(momentum));
    m.put("seed", Long.toString(seed));
    return m;
  }
}

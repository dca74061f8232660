package io.kiln.worker.training;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import java.util.Map;

/**
 * A trainable model family ({@code algorithm} in a JobSpec). The training loop knows nothing about
 * architectures: it asks the definition for a DJL {@link Block} and the per-sample input shape and
 * trains it with softmax cross-entropy. Register new definitions in {@link ModelDefinitions}. The
 * public part is {@link io.kiln.api.KilnModel}, which users' jars implement (algorithm {@code java});
 * this adds the name the job spec uses.
 */
public interface ModelDefinition extends io.kiln.api.KilnModel {

  /** The {@code algorithm} name users give, e.g. {@code "mlp"}. */
  String name();

  /**
   * Builds an uninitialised block for {@code numClasses} outputs (logits).
   *
   * @param hyperparameters the job's string hyperparameters; a definition reads its own (e.g. {@code hidden})
   * @throws IllegalArgumentException if a hyperparameter it reads is malformed (the message names it)
   */
  Block build(Map<String, String> hyperparameters, int numClasses);

  /**
   * The shape of one sample as the block consumes it, without the batch axis, for images of
   * {@code rows x cols} with one channel: e.g. {@code (784)} for an MLP, {@code (1, 28, 28)} for a CNN.
   */
  Shape inputShape(int rows, int cols);

  /** The hyperparameters this definition reads, with their defaults (recorded in model.json). */
  default Map<String, String> defaults() {
    return Map.of();
  }
}

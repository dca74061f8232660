package io.kiln.api;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import java.util.Map;

/**
 * A model family that Kiln trains with its own data-parallel loop (algorithm {@code java}, see
 * docs/java-models.md). Kiln's built-in {@code mlp} and {@code cnn} implement it too.
 *
 * <p>Kiln asks for an uninitialised DJL {@link Block} and the per-sample input shape, initialises the
 * parameters (the same on every rank), and trains the block with softmax cross-entropy on the job's
 * {@code train} channel (IDX images), averaging gradients across workers. A user's implementation is
 * packaged in a jar, named with {@code kiln train --jar model.jar --model-class com.example.MyModel},
 * and instantiated with its public no-argument constructor in a class loader of its own: classes of
 * {@code java.*}, {@code ai.djl.*}, {@code io.kiln.api.*} and {@code org.slf4j.*} come from the worker,
 * everything else from the jar first.
 */
public interface KilnModel {

  /**
   * Builds an uninitialised block that maps a batch of samples to {@code numClasses} logits.
   *
   * @param hyperparameters the job's hyperparameters as strings (the model reads its own)
   * @throws IllegalArgumentException if a hyperparameter it reads is malformed (the message names it;
   *     it becomes the job's failure reason)
   */
  Block build(Map<String, String> hyperparameters, int numClasses);

  /**
   * The shape of one sample as the block consumes it, without the batch axis, for images of
   * {@code rows x cols} with one channel: e.g. {@code (784)} for a dense net, {@code (1, 28, 28)} for
   * a convolutional one.
   */
  Shape inputShape(int rows, int cols);

  /** The hyperparameters the model reads, with their defaults (recorded in the model's model.json). */
  default Map<String, String> defaults() {
    return Map.of();
  }
}

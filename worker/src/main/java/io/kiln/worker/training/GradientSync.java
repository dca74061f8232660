package io.kiln.worker.training;

import ai.djl.ndarray.NDList;

/**
 * The data-parallel hook of {@link TrainingLoop}: called on every rank after the backward pass and
 * before the optimizer step, with the model's gradients in a fixed order (the order of
 * {@code block.getParameters()}, identical on every rank because every rank builds the same model).
 *
 * <p>An implementation must leave the <em>average</em> of all ranks' gradients in the given arrays,
 * in place (the optimizer reads them afterwards). Write through the arrays' direct buffer
 * ({@code grad.toByteBuffer(true).asFloatBuffer().put(...)}) or with {@code muli(0).addi(src)};
 * never {@code NDArray.set(Buffer)} on a gradient (it crashed the JVM, see STACK.md). The arrays
 * are float32 on the CPU. A failure (exception) fails the task with the exception's message.
 */
@FunctionalInterface
public interface GradientSync extends AutoCloseable {

  /** Single rank: nothing to average. */
  GradientSync NONE = (gradients, step) -> {};

  /**
   * Averages {@code gradients} across ranks, in place.
   *
   * @param step the 0-based global optimizer step the gradients belong to (same on every rank)
   */
  void sync(NDList gradients, long step) throws Exception;

  /**
   * Called once after the model is initialised, before the first step, with its trainable
   * parameters (same order as the gradients): a data-parallel implementation makes them identical
   * on every rank (broadcast from rank 0).
   */
  default void start(NDList parameters) throws Exception {}

  /** Releases connections; called once when the loop ends (normally or not). */
  @Override
  default void close() throws Exception {}
}

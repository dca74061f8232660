package io.kiln.worker.training;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.initializer.Initializer;
import java.util.SplittableRandom;

/**
 * PyTorch's default weight initialisation (uniform in +-1/sqrt(fan_in)), drawn from a Java
 * generator seeded by the job's {@code seed}: every rank of a data-parallel job builds bit-identical
 * initial weights without a broadcast, whatever other tasks do with the engine's global RNG.
 */
public final class SeededUniformInitializer implements Initializer {
  private final SplittableRandom random;

  public SeededUniformInitializer(long seed) {
    this.random = new SplittableRandom(seed ^ 0x5DEECE66DL);
  }

  @Override
  public synchronized NDArray initialize(NDManager manager, Shape shape, DataType dataType) {
    long fanIn = shape.dimension() > 1 ? shape.size() / shape.get(0) : shape.size();
    double bound = 1.0 / Math.sqrt(Math.max(1, fanIn));
    int n = Math.toIntExact(shape.size());
    float[] values = new float[n];
    for (int i = 0; i < n; i++) values[i] = (float) ((random.nextDouble() * 2 - 1) * bound);
    NDArray a = manager.create(values, shape);
    return dataType == DataType.FLOAT32 ? a : a.toType(dataType, false);
  }
}

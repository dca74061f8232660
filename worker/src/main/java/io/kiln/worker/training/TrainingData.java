package io.kiln.worker.training;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.kiln.worker.data.MnistDataset;

/**
 * One split in engine memory: {@code features} (float32, one row per sample, shape (n, d)) and
 * {@code labels} (int64, shape (n)). Batches are taken from it by index, never sample by sample.
 */
public record TrainingData(NDArray features, NDArray labels, int rows, int cols, int numClasses) {

  public static TrainingData of(MnistDataset ds, NDManager manager) {
    return new TrainingData(ds.images(manager), ds.labels(manager), ds.rows(), ds.cols(), ds.numClasses());
  }

  public int size() {
    return Math.toIntExact(features.getShape().get(0));
  }
}

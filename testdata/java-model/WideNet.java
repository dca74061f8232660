package com.example;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import io.kiln.api.KilnModel;
import java.util.Map;

/**
 * A user's model for Kiln's tests (algorithm java, docs/java-models.md): dense, ReLU, dense, its width
 * a hyperparameter. The tests compile it into a jar with javax.tools.
 */
public class WideNet implements KilnModel {
  public Block build(Map<String, String> hp, int numClasses) {
    int width = Integer.parseInt(hp.getOrDefault("width", "64"));
    return new SequentialBlock().add(Linear.builder().setUnits(width).build()).add(Activation.reluBlock())
        .add(Linear.builder().setUnits(numClasses).build());
  }

  public Shape inputShape(int rows, int cols) {
    return new Shape((long) rows * cols);
  }

  public Map<String, String> defaults() {
    return Map.of("width", "64");
  }
}

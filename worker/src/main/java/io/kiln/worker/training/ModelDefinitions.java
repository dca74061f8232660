package io.kiln.worker.training;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/** The registry of model definitions, by algorithm name. */
public final class ModelDefinitions {
  private static final Map<String, ModelDefinition> REGISTRY = Collections.synchronizedMap(new TreeMap<>());

  static {
    register(new Mlp());
    register(new Cnn());
  }

  private ModelDefinitions() {}

  /** Adds (or replaces) a definition under its {@link ModelDefinition#name()}. */
  public static void register(ModelDefinition definition) {
    REGISTRY.put(definition.name(), definition);
  }

  public static Optional<ModelDefinition> find(String algorithm) {
    return Optional.ofNullable(algorithm == null ? null : REGISTRY.get(algorithm.trim()));
  }

  /** The definition for {@code algorithm}; an unknown name fails with the list of known ones. */
  public static ModelDefinition get(String algorithm) {
    return find(algorithm).orElseThrow(() -> new IllegalArgumentException(
        "unknown algorithm '" + algorithm + "' (known: " + String.join(", ", names()) + ")"));
  }

  public static List<String> names() {
    synchronized (REGISTRY) {
      return List.copyOf(REGISTRY.keySet());
    }
  }

  /**
   * Multi-layer perceptron: flattened pixels, then one dense+ReLU layer per entry of the
   * {@code hidden} hyperparameter (comma-separated sizes, default {@code 256,128}), then the logits.
   */
  public static final class Mlp implements ModelDefinition {
    public static final String DEFAULT_HIDDEN = "256,128";

    @Override
    public String name() {
      return "mlp";
    }

    @Override
    public Block build(Map<String, String> hp, int numClasses) {
      SequentialBlock net = new SequentialBlock();
      for (int units : hiddenSizes(hp.getOrDefault("hidden", DEFAULT_HIDDEN))) {
        net.add(Linear.builder().setUnits(units).build());
        net.add(Activation.reluBlock());
      }
      net.add(Linear.builder().setUnits(numClasses).build());
      return net;
    }

    @Override
    public Shape inputShape(int rows, int cols) {
      return new Shape((long) rows * cols);
    }

    @Override
    public Map<String, String> defaults() {
      return Map.of("hidden", DEFAULT_HIDDEN);
    }

    static List<Integer> hiddenSizes(String spec) {
      List<Integer> sizes = new ArrayList<>();
      if (spec.isBlank()) return sizes; // no hidden layer: multinomial logistic regression
      for (String part : spec.split(",")) {
        String p = part.trim();
        int n;
        try {
          n = Integer.parseInt(p);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("hyperparameter hidden: '" + spec
              + "' must be comma-separated layer sizes, e.g. 256,128");
        }
        if (n < 1 || n > 65_536) {
          throw new IllegalArgumentException("hyperparameter hidden: layer size " + n + " outside 1..65536");
        }
        sizes.add(n);
      }
      return sizes;
    }
  }

  /**
   * Small convolutional net for one-channel images (28x28): conv 32 5x5 (same padding), ReLU, max-pool
   * 2x2, conv 64 5x5, ReLU, max-pool 2x2, dense 128 (ReLU), logits. Hyperparameter {@code dense}
   * (default 128) sets the dense layer's width.
   */
  public static final class Cnn implements ModelDefinition {
    @Override
    public String name() {
      return "cnn";
    }

    @Override
    public Block build(Map<String, String> hp, int numClasses) {
      int dense = Hyperparameters.intValue(hp, "dense", 128, 1, 65_536);
      return new SequentialBlock()
          .add(Conv2d.builder().setKernelShape(new Shape(5, 5)).optPadding(new Shape(2, 2)).setFilters(32).build())
          .add(Activation.reluBlock())
          .add(Pool.maxPool2dBlock(new Shape(2, 2)))
          .add(Conv2d.builder().setKernelShape(new Shape(5, 5)).optPadding(new Shape(2, 2)).setFilters(64).build())
          .add(Activation.reluBlock())
          .add(Pool.maxPool2dBlock(new Shape(2, 2)))
          .add(Blocks.batchFlattenBlock())
          .add(Linear.builder().setUnits(dense).build())
          .add(Activation.reluBlock())
          .add(Linear.builder().setUnits(numClasses).build());
    }

    @Override
    public Shape inputShape(int rows, int cols) {
      return new Shape(1, rows, cols);
    }

    @Override
    public Map<String, String> defaults() {
      return Map.of("dense", "128");
    }
  }
}

package io.kiln.worker.algorithms.linear;

import io.kiln.worker.algorithms.knn.BuiltinSupport;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The checked hyperparameters of {@code linear-learner}, with SageMaker's names; {@code auto}
 * (SageMaker's default for several) is accepted where SageMaker accepts it and means Kiln's default.
 */
public record LinearParams(Type type, int numClasses, int epochs, int miniBatchSize, boolean adam, double learningRate,
    double momentum, double beta1, double beta2, double l1, double wd, boolean normalizeData, boolean normalizeLabel,
    boolean useBias, long lrStep, double lrFactor, double lrMin, int patience, double tolerance, long seed,
    int maxRows, String contentType, Map<String, String> effective) {

  /** {@code predictor_type}. */
  public enum Type {
    REGRESSOR("regressor"), BINARY("binary_classifier"), MULTICLASS("multiclass_classifier");

    final String label;

    Type(String label) {
      this.label = label;
    }
  }

  static final Set<String> KNOWN = Set.of("predictor_type", "num_classes", "epochs", "mini_batch_size", "optimizer",
      "learning_rate", "momentum", "beta_1", "beta_2", "l1", "wd", "normalize_data", "normalize_label", "use_bias",
      "lr_scheduler_step", "lr_scheduler_factor", "lr_scheduler_minimum_lr", "early_stopping_patience",
      "early_stopping_tolerance", "seed", "feature_dim");

  public static LinearParams parse(Map<String, String> raw) {
    Map<String, String> hp = new TreeMap<>(raw);
    // SageMaker's "auto": Kiln's default
    hp.entrySet().removeIf(e -> e.getValue() != null && e.getValue().trim().equalsIgnoreCase("auto")
        && Set.of("optimizer", "learning_rate", "momentum", "l1", "wd", "normalize_data", "normalize_label",
            "lr_scheduler_step", "lr_scheduler_factor", "lr_scheduler_minimum_lr").contains(e.getKey()));
    BuiltinSupport.Checker c = new BuiltinSupport.Checker(LinearLearnerRunner.NAME, hp, KNOWN);
    String t = c.choice("predictor_type", null, "regressor", "binary_classifier", "multiclass_classifier");
    Type type = t == null ? Type.REGRESSOR : Type.valueOf(t.equals("regressor") ? "REGRESSOR"
        : t.equals("binary_classifier") ? "BINARY" : "MULTICLASS");
    Long numClasses = c.integer("num_classes", type == Type.MULTICLASS && t != null ? null : 0L, 3, 1_000_000);
    if (type != Type.MULTICLASS && hp.containsKey("num_classes")) {
      c.problem("num_classes is only for predictor_type multiclass_classifier");
    }
    Long epochs = c.integer("epochs", 15L, 1, 1_000_000);
    Long batch = c.integer("mini_batch_size", 1000L, 1, Integer.MAX_VALUE);
    String optimizer = c.choice("optimizer", "adam", "adam", "sgd");
    boolean adam = "adam".equals(optimizer);
    double lr = c.number("learning_rate", adam ? 0.01 : 0.1, 0, true);
    double momentum = c.range("momentum", 0, 0, 0.999999);
    double beta1 = c.range("beta_1", 0.9, 0, 0.999999);
    double beta2 = c.range("beta_2", 0.999, 0, 0.999999);
    double l1 = c.number("l1", 0, 0, false);
    double wd = c.number("wd", 0, 0, false);
    boolean normalizeData = c.bool("normalize_data", true);
    boolean normalizeLabel = c.bool("normalize_label", type == Type.REGRESSOR);
    if (normalizeLabel && type != Type.REGRESSOR) {
      c.problem("normalize_label true is only for predictor_type regressor");
    }
    boolean useBias = c.bool("use_bias", true);
    Long lrStep = c.integer("lr_scheduler_step", 0L, 1, Integer.MAX_VALUE);
    double lrFactor = c.range("lr_scheduler_factor", 1, 1e-9, 1);
    double lrMin = c.number("lr_scheduler_minimum_lr", 1e-5, 0, false);
    Long patience = c.integer("early_stopping_patience", 3L, 1, 1_000_000);
    double tolerance = c.number("early_stopping_tolerance", 0.001, 0, false);
    Long seed = c.integer("seed", 0L, Long.MIN_VALUE, Long.MAX_VALUE);
    c.integer("feature_dim", 0L, 1, Integer.MAX_VALUE);
    int maxRows = c.maxRows();
    c.done();
    Map<String, String> eff = new TreeMap<>(raw);
    eff.put("predictor_type", type.label);
    if (type == Type.MULTICLASS) eff.put("num_classes", Long.toString(numClasses));
    eff.put("epochs", Long.toString(epochs));
    eff.put("mini_batch_size", Long.toString(batch));
    eff.put("optimizer", optimizer);
    eff.put("learning_rate", Double.toString(lr));
    eff.put("l1", Double.toString(l1));
    eff.put("wd", Double.toString(wd));
    eff.put("normalize_data", Boolean.toString(normalizeData));
    eff.put("normalize_label", Boolean.toString(normalizeLabel));
    eff.put("use_bias", Boolean.toString(useBias));
    eff.put("early_stopping_patience", Long.toString(patience));
    eff.put("early_stopping_tolerance", Double.toString(tolerance));
    eff.put("seed", Long.toString(seed));
    return new LinearParams(type, numClasses == null ? 0 : numClasses.intValue(), epochs.intValue(),
        batch.intValue(), adam, lr, momentum, beta1, beta2, l1, wd, normalizeData, normalizeLabel, useBias,
        lrStep, lrFactor, lrMin, patience.intValue(), tolerance, seed, maxRows, c.contentType(), eff);
  }

  /** Outputs of the linear model: the classes for multiclass, else 1. */
  public int outputs() {
    return type == Type.MULTICLASS ? numClasses : 1;
  }
}

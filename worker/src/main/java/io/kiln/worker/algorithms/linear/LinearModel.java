package io.kiln.worker.algorithms.linear;

import io.kiln.worker.algorithms.linear.LinearParams.Type;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A linear model {@code z = W x + b} with its link: identity (regressor, squared loss), sigmoid
 * (binary classifier, log loss on labels 0/1) or softmax (multiclass, cross-entropy on labels
 * 0..K-1). Weights are {@code outputs x dim}.
 */
public final class LinearModel {
  final Type type;
  final int outputs;
  final int dim;
  final double[][] w;
  final double[] b;

  LinearModel(Type type, int outputs, int dim) {
    this.type = type;
    this.outputs = outputs;
    this.dim = dim;
    this.w = new double[outputs][dim];
    this.b = new double[outputs];
  }

  /** Raw scores of {@code x} into {@code z}. */
  void scores(double[] x, double[] z) {
    for (int o = 0; o < outputs; o++) {
      double s = b[o];
      double[] wo = w[o];
      for (int j = 0; j < dim; j++) s += wo[j] * x[j];
      z[o] = s;
    }
  }

  /**
   * Adds the row's loss gradient to {@code grad} ({@code outputs x dim} weight gradients row-major,
   * then {@code outputs} bias gradients) and returns the row's loss. {@code z} is scratch.
   */
  double accumulate(double[] x, double y, double[] z, double[] grad) {
    scores(x, z);
    double loss = dLoss(z, y);
    for (int o = 0; o < outputs; o++) {
      double g = z[o];
      if (g == 0) continue;
      int off = o * dim;
      for (int j = 0; j < dim; j++) grad[off + j] += g * x[j];
      grad[outputs * dim + o] += g;
    }
    return loss;
  }

  /** Replaces {@code z} (scores) by dLoss/dz and returns the loss. */
  private double dLoss(double[] z, double y) {
    switch (type) {
      case REGRESSOR -> {
        double d = z[0] - y;
        z[0] = 2 * d;
        return d * d;
      }
      case BINARY -> {
        double s = z[0];
        double p = sigmoid(s);
        z[0] = p - y;
        // log(1 + e^s) - y s, computed without overflow
        return (s > 0 ? s + Math.log1p(Math.exp(-s)) : Math.log1p(Math.exp(s))) - y * s;
      }
      default -> {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : z) max = Math.max(max, v);
        double sum = 0;
        for (int o = 0; o < outputs; o++) sum += Math.exp(z[o] - max);
        int label = (int) y;
        double loss = Math.log(sum) + max - z[label];
        for (int o = 0; o < outputs; o++) z[o] = Math.exp(z[o] - max) / sum - (o == label ? 1 : 0);
        return loss;
      }
    }
  }

  static double sigmoid(double s) {
    return s >= 0 ? 1 / (1 + Math.exp(-s)) : Math.exp(s) / (1 + Math.exp(s));
  }

  /** The prediction: the value (regressor), the class (classifiers). */
  double predict(double[] x, double[] z) {
    scores(x, z);
    if (type == Type.REGRESSOR) return z[0];
    if (type == Type.BINARY) return z[0] > 0 ? 1 : 0;
    int best = 0;
    for (int o = 1; o < outputs; o++) if (z[o] > z[best]) best = o;
    return best;
  }

  /** Sums over the rows: {count, loss, correct (classifiers) or squared error, absolute error}. */
  double[] evaluate(double[][] x, float[] y) {
    double[] s = new double[4];
    double[] z = new double[outputs];
    double[] g = new double[outputs];
    for (int i = 0; i < x.length; i++) {
      double p = predict(x[i], z);
      System.arraycopy(z, 0, g, 0, outputs);
      s[0]++;
      s[1] += dLoss(g, y[i]);
      if (type == Type.REGRESSOR) {
        double d = p - y[i];
        s[2] += d * d;
        s[3] += Math.abs(d);
      } else if (p == y[i]) {
        s[2]++;
      }
    }
    return s;
  }

  /** Metrics named {@code <prefix>_...} from summed {@link #evaluate} results. */
  Map<String, Double> metrics(String prefix, double[] s) {
    Map<String, Double> m = new LinkedHashMap<>();
    double n = Math.max(1, s[0]);
    m.put(prefix + "_objective_loss", s[1] / n);
    if (type == Type.REGRESSOR) {
      m.put(prefix + "_mse", s[2] / n);
      m.put(prefix + "_rmse", Math.sqrt(s[2] / n));
      m.put(prefix + "_absolute_loss", s[3] / n);
    } else {
      m.put(prefix + "_accuracy", s[2] / n);
    }
    return m;
  }

  /**
   * Undoes the training-time scaling: the model was fitted on {@code (x - mean) / std} against
   * {@code (y - yMean) / yStd}; the returned model takes raw features and predicts raw labels.
   */
  LinearModel unscaled(double[] mean, double[] std, double yMean, double yStd) {
    LinearModel m = new LinearModel(type, outputs, dim);
    for (int o = 0; o < outputs; o++) {
      double bias = b[o];
      for (int j = 0; j < dim; j++) {
        double wj = w[o][j] / std[j];
        m.w[o][j] = wj * yStd;
        bias -= wj * mean[j];
      }
      m.b[o] = bias * yStd + yMean;
    }
    return m;
  }

  LinearModel copy() {
    LinearModel m = new LinearModel(type, outputs, dim);
    for (int o = 0; o < outputs; o++) m.w[o] = w[o].clone();
    System.arraycopy(b, 0, m.b, 0, outputs);
    return m;
  }

  /** The model.json content (see docs/algorithms.md#linear-learner). */
  Map<String, Object> toJson() {
    Map<String, Object> j = new LinkedHashMap<>();
    j.put("format", LinearLearnerRunner.MODEL_FORMAT);
    j.put("predictor_type", type.label);
    j.put("num_features", dim);
    j.put("num_outputs", outputs);
    j.put("link", type == Type.REGRESSOR ? "identity" : type == Type.BINARY ? "sigmoid" : "softmax");
    j.put("weights", io.kiln.worker.algorithms.knn.BuiltinSupport.lists(w));
    j.put("bias", io.kiln.worker.algorithms.knn.BuiltinSupport.list(b));
    j.put("prediction", switch (type) {
      case REGRESSOR -> "score = weights[0] . x + bias[0]";
      case BINARY -> "p = sigmoid(weights[0] . x + bias[0]); predicted_label = p > 0.5 ? 1 : 0";
      case MULTICLASS -> "p = softmax(weights . x + bias); predicted_label = argmax p (classes 0..num_outputs-1)";
    });
    if (type != Type.REGRESSOR) j.put("classes", type == Type.BINARY ? List.of(0, 1) : classes());
    return j;
  }

  private List<Integer> classes() {
    Integer[] c = new Integer[outputs];
    for (int i = 0; i < outputs; i++) c[i] = i;
    return List.of(c);
  }
}

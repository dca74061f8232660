package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The linear-learner built-in: its self-contained {@code model.json} (kiln-linear-v1). Outputs
 * regressor {@code [score]}; binary {@code [predicted_label, p]}; multiclass
 * {@code [predicted_label, p0..pn-1]} (docs/algorithms.md#linear-learner).
 */
final class LinearPredictor extends RowPredictor {
  private final double[][] w;
  private final double[] b;
  private final String link;

  private LinearPredictor(double[][] w, double[] b, String link, boolean pixels, List<String> names) {
    super("linear-learner", w[0].length, pixels, names);
    this.w = w;
    this.b = b;
    this.link = link;
  }

  static LinearPredictor load(Path folder, JsonNode d, Path descriptor) throws ModelLoadException {
    Path file = folder.resolve(d.path("model_file").asText("model.json"));
    JsonNode m = ModelFiles.json(file);
    double[][] w = ModelFiles.matrix(ModelFiles.field(m, "weights", file), file, "weights");
    double[] b = ModelFiles.vector(ModelFiles.field(m, "bias", file), file, "bias");
    String link = ModelFiles.field(m, "link", file).asText();
    if (w.length == 0 || w.length != b.length) throw new ModelLoadException(file, "weights and bias disagree");
    List<String> names = new ArrayList<>();
    switch (link) {
      case "identity" -> names.add("score");
      case "sigmoid" -> names.addAll(List.of("predicted_label", "p"));
      case "softmax" -> {
        names.add("predicted_label");
        for (int i = 0; i < w.length; i++) names.add("p" + i);
      }
      default -> throw new ModelLoadException(file, "unknown link '" + link + "'");
    }
    return new LinearPredictor(w, b, link, ModelFiles.pixelScaled(d), List.copyOf(names));
  }

  @Override
  float[] predictRow(double[] x) {
    double[] z = new double[w.length];
    for (int o = 0; o < w.length; o++) {
      double s = b[o];
      for (int j = 0; j < x.length; j++) s += w[o][j] * x[j];
      z[o] = s;
    }
    switch (link) {
      case "identity":
        return new float[] {(float) z[0]};
      case "sigmoid": {
        double p = 1 / (1 + Math.exp(-z[0]));
        return new float[] {p > 0.5 ? 1 : 0, (float) p};
      }
      default: {
        double max = Double.NEGATIVE_INFINITY;
        int arg = 0;
        for (int o = 0; o < z.length; o++) if (z[o] > max) { max = z[o]; arg = o; }
        double sum = 0;
        for (int o = 0; o < z.length; o++) sum += Math.exp(z[o] - max);
        float[] out = new float[z.length + 1];
        out[0] = arg;
        for (int o = 0; o < z.length; o++) out[o + 1] = (float) (Math.exp(z[o] - max) / sum);
        return out;
      }
    }
  }
}

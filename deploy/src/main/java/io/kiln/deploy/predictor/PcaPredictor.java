package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The pca built-in: {@code model.json} (kiln-pca-v1); outputs {@code z = components . (x - mean)}. */
final class PcaPredictor extends RowPredictor {
  private final double[] mean;
  private final double[][] components;

  private PcaPredictor(double[] mean, double[][] components, boolean pixels, List<String> names) {
    super("pca", mean.length, pixels, names);
    this.mean = mean;
    this.components = components;
  }

  static PcaPredictor load(Path folder, JsonNode d, Path descriptor) throws ModelLoadException {
    Path file = folder.resolve(d.path("model_file").asText("model.json"));
    JsonNode m = ModelFiles.json(file);
    double[] mean = ModelFiles.vector(ModelFiles.field(m, "mean", file), file, "mean");
    double[][] c = ModelFiles.matrix(ModelFiles.field(m, "components", file), file, "components");
    if (c.length == 0 || c[0].length != mean.length) throw new ModelLoadException(file, "components and mean disagree");
    List<String> names = new ArrayList<>();
    for (int i = 0; i < c.length; i++) names.add("z" + i);
    return new PcaPredictor(mean, c, ModelFiles.pixelScaled(d), List.copyOf(names));
  }

  @Override
  float[] predictRow(double[] x) {
    float[] z = new float[components.length];
    for (int k = 0; k < components.length; k++) {
      double s = 0;
      for (int j = 0; j < x.length; j++) s += components[k][j] * (x[j] - mean[j]);
      z[k] = (float) s;
    }
    return z;
  }
}

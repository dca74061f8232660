package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.worker.algorithms.knn.KnnRunner;
import java.nio.file.Path;
import java.util.List;

/**
 * The knn built-in: {@code data.f32} (stored rows, then labels). Serving searches exactly (an IVF
 * index in the folder is ignored: exact search gives the neighbours the index approximates).
 */
final class KnnPredictor extends RowPredictor {
  private final KnnRunner.Model model;

  private KnnPredictor(KnnRunner.Model model, int width, boolean pixels) {
    super("knn", width, pixels, List.of("predicted_label"));
    this.model = model;
  }

  static KnnPredictor load(Path folder, JsonNode d, Path descriptor) throws ModelLoadException {
    int rows = ModelFiles.field(d, "num_rows", descriptor).asInt();
    int f = ModelFiles.field(d, "num_features", descriptor).asInt();
    int k = ModelFiles.field(d, "k", descriptor).asInt();
    boolean classifier = !"regressor".equals(d.path("predictor_type").asText("classifier"));
    boolean cosine = "cosine".equals(d.path("distance").asText("l2"));
    float[] data = ModelFiles.float32(folder.resolve(d.path("data_file").asText(KnnRunner.DATA_FILE)),
        (long) rows * f + rows);
    double[][] x = new double[rows][f];
    float[] y = new float[rows];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < f; j++) x[i][j] = data[i * f + j];
      y[i] = data[rows * f + i];
    }
    return new KnnPredictor(new KnnRunner.Model(x, y, k, classifier, cosine), f, ModelFiles.pixelScaled(d));
  }

  @Override
  float[] predictRow(double[] x) {
    return new float[] {(float) model.predict(x)};
  }
}

package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.worker.algorithms.kmeans.KMeansRunner;
import java.nio.file.Path;
import java.util.List;

/** The kmeans built-in: {@code centroids.f32}; outputs the nearest cluster and the distance to it (SageMaker's closest_cluster, distance_to_cluster). */
final class KMeansPredictor extends RowPredictor {
  private final double[][] centroids;

  private KMeansPredictor(double[][] centroids, boolean pixels) {
    super("kmeans", centroids[0].length, pixels, List.of("closest_cluster", "distance_to_cluster"));
    this.centroids = centroids;
  }

  static KMeansPredictor load(Path folder, JsonNode d, Path descriptor) throws ModelLoadException {
    int k = ModelFiles.field(d, "k", descriptor).asInt();
    int f = ModelFiles.field(d, "num_features", descriptor).asInt();
    String file = d.path("centroids_file").asText(KMeansRunner.CENTROIDS_FILE);
    float[] c = ModelFiles.float32(folder.resolve(file), (long) k * f);
    double[][] centroids = new double[k][f];
    for (int i = 0; i < k; i++) for (int j = 0; j < f; j++) centroids[i][j] = c[i * f + j];
    return new KMeansPredictor(centroids, ModelFiles.pixelScaled(d));
  }

  @Override
  float[] predictRow(double[] x) {
    double[] n = KMeansRunner.nearest(centroids, x);
    return new float[] {(float) n[0], (float) Math.sqrt(n[1])};
  }
}

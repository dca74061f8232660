package io.kiln.deploy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import ml.dmlc.xgboost4j.java.Booster;
import ml.dmlc.xgboost4j.java.DMatrix;
import ml.dmlc.xgboost4j.java.XGBoost;

/** Model folders in the formats the worker's built-ins write (docs/algorithms.md), for tests and benchmarks. */
public final class TestModels {
  private static final ObjectMapper JSON = new ObjectMapper();

  private TestModels() {}

  /** A kmeans folder: centroids.f32 + kiln-model.json. */
  public static Path kmeans(Path dir, double[][] centroids) throws IOException {
    Files.createDirectories(dir);
    int k = centroids.length;
    int f = centroids[0].length;
    ByteBuffer b = ByteBuffer.allocate(k * f * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (double[] c : centroids) for (double v : c) b.putFloat((float) v);
    Files.write(dir.resolve("centroids.f32"), b.array());
    descriptor(dir, Map.of("format", "kiln-kmeans-v1", "algorithm", "kmeans", "k", k, "num_features", f,
        "centroids_file", "centroids.f32"));
    return dir;
  }

  /** A linear-learner folder: model.json (kiln-linear-v1) + kiln-model.json. */
  public static Path linear(Path dir, String link, double[][] w, double[] bias) throws IOException {
    Files.createDirectories(dir);
    JSON.writeValue(dir.resolve("model.json").toFile(), Map.of("format", "kiln-linear-v1", "link", link,
        "num_features", w[0].length, "num_outputs", w.length, "weights", w, "bias", bias));
    descriptor(dir, Map.of("format", "kiln-linear-learner-v1", "algorithm", "linear-learner", "model_file", "model.json"));
    return dir;
  }

  public static Path pca(Path dir, double[] mean, double[][] components) throws IOException {
    Files.createDirectories(dir);
    JSON.writeValue(dir.resolve("model.json").toFile(), Map.of("format", "kiln-pca-v1", "mean", mean,
        "components", components, "num_features", mean.length, "num_components", components.length));
    descriptor(dir, Map.of("format", "kiln-pca-v1", "algorithm", "pca", "model_file", "model.json"));
    return dir;
  }

  public static Path knn(Path dir, float[][] x, float[] y, int k) throws IOException {
    Files.createDirectories(dir);
    int f = x[0].length;
    ByteBuffer b = ByteBuffer.allocate((x.length * f + x.length) * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float[] r : x) for (float v : r) b.putFloat(v);
    for (float v : y) b.putFloat(v);
    Files.write(dir.resolve("data.f32"), b.array());
    descriptor(dir, Map.of("format", "kiln-knn-v1", "algorithm", "knn", "k", k, "predictor_type", "classifier",
        "distance", "l2", "num_features", f, "num_rows", x.length, "data_file", "data.f32"));
    return dir;
  }

  /** Trains a tiny XGBoost model with XGBoost4J (as the worker does) and writes it as the xgboost built-in would. */
  public static Path xgboost(Path dir, float[][] x, float[] y, String objective) throws Exception {
    Files.createDirectories(dir);
    int f = x[0].length;
    float[] flat = new float[x.length * f];
    for (int i = 0; i < x.length; i++) System.arraycopy(x[i], 0, flat, i * f, f);
    DMatrix m = new DMatrix(flat, x.length, f, Float.NaN);
    m.setLabel(y);
    Map<String, Object> p = new HashMap<>(Map.of("objective", objective, "max_depth", 3, "eta", 0.5, "nthread", 1));
    Booster b = XGBoost.train(m, p, 20, Map.of(), null, null);
    b.saveModel(dir.resolve("model.json").toString());
    b.dispose();
    m.dispose();
    descriptor(dir, Map.of("format", "kiln-xgboost-v1", "algorithm", "xgboost", "model_file", "model.json",
        "model_format", "json", "num_features", f, "objective", objective));
    return dir;
  }

  private static void descriptor(Path dir, Map<String, Object> d) throws IOException {
    JSON.writeValue(dir.resolve("kiln-model.json").toFile(), d);
  }

  /** Exports a TorchScript model y = x . W^T + b (W 3x4) with /usr/bin/python3 torch; null when torch is missing. */
  public static Path torchScript(Path dir) throws Exception {
    Files.createDirectories(dir);
    Path out = dir.resolve("model.pt");
    String py = "import torch\n"
        + "m = torch.nn.Linear(4, 3)\n"
        + "with torch.no_grad():\n"
        + "  m.weight.copy_(torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10)\n"
        + "  m.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))\n"
        + "torch.jit.trace(m, torch.zeros(1, 4)).save('" + out + "')\n";
    if (!Files.isExecutable(Path.of("/usr/bin/python3"))) return null;
    Process p = new ProcessBuilder(List.of("/usr/bin/python3", "-c", py)).redirectErrorStream(true).start();
    String log = new String(p.getInputStream().readAllBytes());
    if (p.waitFor() != 0) {
      if (log.contains("No module named 'torch'")) return null;
      throw new IOException("python3 torch export failed: " + log);
    }
    return out;
  }
}

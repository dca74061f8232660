package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Loads a model folder into a {@link Predictor}, choosing by what the trainer wrote:
 * <ul>
 *   <li>{@code kiln-model.json} (the built-ins): its {@code format} kiln-xgboost-v1, kiln-kmeans-v1,
 *       kiln-knn-v1, kiln-linear-learner-v1 or kiln-pca-v1; {@code torchscript} with {@code model_file}
 *       for an imported TorchScript model;</li>
 *   <li>{@code model.json} with format kiln-djl-v1 (Kiln's mlp/cnn);</li>
 *   <li>a folder holding exactly one {@code .pt} file, or a {@code .pt} file itself (TorchScript).</li>
 * </ul>
 */
public final class PredictorLoader {
  public static final String DESCRIPTOR = "kiln-model.json";

  private PredictorLoader() {}

  public static Predictor load(Path path) throws IOException {
    if (Files.isRegularFile(path) && path.toString().endsWith(".pt")) return DjlPredictor.loadTorchScript(path);
    if (!Files.isDirectory(path)) throw new ModelLoadException(path, "no such model folder");
    Path descriptor = path.resolve(DESCRIPTOR);
    if (Files.exists(descriptor)) {
      JsonNode d = ModelFiles.json(descriptor);
      String format = ModelFiles.field(d, "format", descriptor).asText();
      return switch (format) {
        case "kiln-xgboost-v1" -> XGBoostPredictor.load(path, d, descriptor);
        case "kiln-kmeans-v1" -> KMeansPredictor.load(path, d, descriptor);
        case "kiln-knn-v1" -> KnnPredictor.load(path, d, descriptor);
        case "kiln-linear-learner-v1" -> LinearPredictor.load(path, d, descriptor);
        case "kiln-pca-v1" -> PcaPredictor.load(path, d, descriptor);
        case "torchscript" -> DjlPredictor.loadTorchScript(path.resolve(d.path("model_file").asText("model.pt")));
        default -> throw new ModelLoadException(descriptor, "unsupported format '" + format
            + "' (served: kiln-xgboost-v1, kiln-kmeans-v1, kiln-knn-v1, kiln-linear-learner-v1, kiln-pca-v1, torchscript)");
      };
    }
    Path modelJson = path.resolve("model.json");
    if (Files.exists(modelJson)) {
      JsonNode m = ModelFiles.json(modelJson);
      if ("kiln-djl-v1".equals(m.path("format").asText())) return DjlPredictor.loadKiln(path);
      throw new ModelLoadException(modelJson, "format '" + m.path("format").asText()
          + "' without " + DESCRIPTOR + " (a folder the trainer did not finish?)");
    }
    List<Path> pts;
    try (Stream<Path> s = Files.list(path)) {
      pts = s.filter(p -> p.toString().endsWith(".pt")).toList();
    }
    if (pts.size() == 1) return DjlPredictor.loadTorchScript(pts.get(0));
    throw new ModelLoadException(path, pts.isEmpty()
        ? "no model: expected " + DESCRIPTOR + ", model.json (kiln-djl-v1) or a TorchScript .pt file"
        : "several .pt files; name one in " + DESCRIPTOR + " (format torchscript, model_file)");
  }

  /** Bytes of the model's files: the memory estimate used by the multi-model budget. */
  public static long estimateBytes(Path path) {
    return Files.isDirectory(path) ? ModelFiles.folderBytes(path) : path.toFile().length();
  }
}

package io.kiln.worker.training;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.artifacts.ArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The model folder format: DJL parameters ({@code model-0000.params}, written by {@link Model#save})
 * plus {@code model.json} describing how to rebuild the block and read its outputs:
 *
 * <pre>{@code
 * {"format": "kiln-djl-v1", "engine": "PyTorch", "algorithm": "mlp", "model_name": "model",
 *  "params_file": "model-0000.params", "hyperparameters": {"hidden": "256,128", "epochs": "1", ...},
 *  "input_shape": [784], "image_shape": [28, 28], "preprocessing": "pixel / 255",
 *  "num_classes": 10, "class_names": ["T-shirt/top", ...], "metrics": {"test_accuracy": 0.85, ...},
 *  "job_id": "...", "task_id": "...", "created_at": "2026-11-26T14:30:12Z"}
 * }</pre>
 */
public final class ModelArtifacts {
  public static final String FORMAT = "kiln-djl-v1";
  public static final String MODEL_JSON = "model.json";
  public static final String MODEL_NAME = "model";
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping()
      .serializeSpecialFloatingPointValues().create();

  private ModelArtifacts() {}

  /** What model.json says. */
  public record Description(String algorithm, Map<String, String> hyperparameters, Shape inputShape, int rows, int cols,
      int numClasses, List<String> classNames, Map<String, Double> metrics, String jobId, String taskId) {}

  /**
   * Writes the trained model into the folder {@code modelUri} of {@code store}: parameters, then model.json
   * (written last, so a folder with model.json is complete).
   */
  public static void write(ArtifactStore store, URI modelUri, Model model, Description d) throws IOException {
    URI folder = folder(modelUri);
    Path tmp = Files.createTempDirectory("kiln-model-");
    try {
      model.setProperty("Epoch", "0");
      model.save(tmp, MODEL_NAME);
      String paramsFile = null;
      try (Stream<Path> files = Files.list(tmp)) {
        for (Path f : (Iterable<Path>) files.sorted()::iterator) {
          String name = f.getFileName().toString();
          if (name.endsWith(".params")) paramsFile = name;
          store.upload(f, folder.resolve(name));
        }
      }
      if (paramsFile == null) throw new IOException("DJL wrote no .params file");
      store.put(folder.resolve(MODEL_JSON), describe(d, paramsFile).getBytes(StandardCharsets.UTF_8));
    } finally {
      deleteTree(tmp);
    }
  }

  /** Writes {@code metrics} as a JSON object to {@code uri}. */
  public static void writeMetrics(ArtifactStore store, URI uri, Map<String, Double> metrics) throws IOException {
    store.put(uri, (GSON.toJson(new TreeMap<>(metrics)) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  static String describe(Description d, String paramsFile) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", FORMAT);
    m.put("engine", "PyTorch");
    m.put("algorithm", d.algorithm());
    m.put("model_name", MODEL_NAME);
    m.put("params_file", paramsFile);
    m.put("hyperparameters", new TreeMap<>(d.hyperparameters()));
    m.put("input_shape", d.inputShape().getShape());
    m.put("image_shape", new int[] {d.rows(), d.cols()});
    m.put("preprocessing", "pixel / 255");
    m.put("num_classes", d.numClasses());
    m.put("class_names", d.classNames());
    m.put("metrics", new TreeMap<>(d.metrics()));
    m.put("job_id", d.jobId());
    m.put("task_id", d.taskId());
    m.put("created_at", Instant.now().toString());
    return GSON.toJson(m) + "\n";
  }

  /** Reads model.json from a local model folder. */
  public static Description readDescription(Path folder) throws IOException {
    Path json = folder.resolve(MODEL_JSON);
    if (!Files.exists(json)) throw new IOException("no " + MODEL_JSON + " in " + folder);
    JsonObject o = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
    if (!FORMAT.equals(o.get("format").getAsString())) {
      throw new IOException(json + ": unsupported format " + o.get("format"));
    }
    Map<String, String> hp = new LinkedHashMap<>();
    o.getAsJsonObject("hyperparameters").entrySet().forEach(e -> hp.put(e.getKey(), e.getValue().getAsString()));
    List<Long> dims = new ArrayList<>();
    o.getAsJsonArray("input_shape").forEach(e -> dims.add(e.getAsLong()));
    List<String> names = new ArrayList<>();
    o.getAsJsonArray("class_names").forEach(e -> names.add(e.getAsString()));
    Map<String, Double> metrics = new LinkedHashMap<>();
    o.getAsJsonObject("metrics").entrySet().forEach(e -> metrics.put(e.getKey(), e.getValue().getAsDouble()));
    var img = o.getAsJsonArray("image_shape");
    return new Description(o.get("algorithm").getAsString(), hp,
        new Shape(dims.stream().mapToLong(Long::longValue).toArray()), img.get(0).getAsInt(), img.get(1).getAsInt(),
        o.get("num_classes").getAsInt(), names, metrics, o.get("job_id").getAsString(), o.get("task_id").getAsString());
  }

  /** Loads a model folder (on the local file system) back into a DJL model; the caller closes it. */
  public static Model load(Path folder) throws IOException {
    Description d = readDescription(folder);
    Block block = ModelDefinitions.get(d.algorithm()).build(d.hyperparameters(), d.numClasses());
    Model model = Model.newInstance(MODEL_NAME, Device.cpu(), "PyTorch");
    try {
      model.setBlock(block);
      block.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1).addAll(d.inputShape()));
      model.load(folder, MODEL_NAME);
      return model;
    } catch (MalformedModelException | RuntimeException e) {
      model.close();
      throw new IOException("cannot load the model in " + folder + ": " + e.getMessage(), e);
    }
  }

  /**
   * {@code uri} with a trailing slash (URI.resolve then stays inside the folder); {@code file:} URIs
   * in the form {@link Path#toUri()} gives ({@code file:///...}), as the artifact store writes them.
   */
  public static URI folder(URI uri) {
    URI u = normalize(uri);
    String s = u.toString();
    return s.endsWith("/") ? u : URI.create(s + "/");
  }

  /** {@code file:} URIs (and absolute paths) in {@code file:///} form; other schemes unchanged. */
  public static URI normalize(URI uri) {
    if (uri.getScheme() != null && !uri.getScheme().equals("file")) return uri;
    String path = uri.getPath();
    String s = Path.of(path).normalize().toUri().toString();
    if (path.endsWith("/") && !s.endsWith("/")) s += "/";
    return URI.create(s);
  }

  private static void deleteTree(Path p) {
    try (Stream<Path> s = Files.walk(p)) {
      s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException ignored) {
      // a temp folder left behind is harmless
    }
  }
}

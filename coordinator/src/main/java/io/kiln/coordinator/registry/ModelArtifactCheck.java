package io.kiln.coordinator.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.protocol.proto.ModelSignature;
import io.kiln.protocol.proto.ModelTensorSpec;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Checks, before a version is registered, that its model folder is there and holds a model of the
 * framework it claims, and reads the signature the folder describes (Kiln's own {@code model.json}
 * and {@code kiln-model.json}). Local {@code file:} folders only, as the artifact store today.
 */
public final class ModelArtifactCheck {
  /** The frameworks and built-in algorithms a version may name. */
  public static final List<String> FRAMEWORKS = List.of("mlp", "cnn", "xgboost", "knn", "kmeans", "linear-learner",
      "pca", "torchscript", "script");
  private static final Set<String> DJL = Set.of("mlp", "cnn");
  private static final Set<String> BUILT_IN = Set.of("xgboost", "knn", "kmeans", "linear-learner", "pca");
  private static final List<String> TORCHSCRIPT_SUFFIXES = List.of(".pt", ".pth", ".torchscript", ".zip");
  private static final ObjectMapper JSON = new ObjectMapper();

  private ModelArtifactCheck() {}

  /** The folder as a normalized {@code file:} URI ending with '/', from a URI or an absolute path. */
  public static URI folderUri(String uriOrPath) {
    String s = uriOrPath == null ? "" : uriOrPath.trim();
    if (s.isEmpty()) throw RegistryException.invalid("modelUri is empty");
    URI u;
    if (s.startsWith("/")) {
      u = Path.of(s).toUri();
    } else {
      try {
        u = URI.create(s);
      } catch (IllegalArgumentException e) {
        throw RegistryException.invalid("modelUri '" + s + "' is not a URI: " + e.getMessage());
      }
      if (!"file".equals(u.getScheme()) || u.getPath() == null) {
        throw RegistryException.invalid("modelUri '" + s + "': only file: URIs or absolute paths are supported "
            + "(the local artifact store)");
      }
    }
    String norm = Path.of(u.getPath()).normalize().toUri().toString();
    return URI.create(norm.endsWith("/") ? norm : norm + "/");
  }

  /** Checks the folder for {@code framework}; returns the signature it describes (empty if none). */
  public static ModelSignature check(URI folder, String framework) {
    if (!FRAMEWORKS.contains(framework)) {
      throw RegistryException.invalid("unknown framework '" + framework + "': use one of " + String.join(", ", FRAMEWORKS));
    }
    Path dir = Path.of(folder);
    if (!Files.isDirectory(dir)) {
      throw RegistryException.invalid("model folder " + folder + " does not exist" + (Files.exists(dir)
          ? " as a folder (it is a file; give the folder that holds it)" : ""));
    }
    List<String> files = files(dir);
    if (files.isEmpty()) throw RegistryException.invalid("model folder " + folder + " is empty");
    if (DJL.contains(framework)) return djl(dir, folder, framework, files);
    if (BUILT_IN.contains(framework)) return builtIn(dir, folder, framework);
    if (framework.equals("torchscript")) return torchscript(dir, folder, files);
    return ModelSignature.getDefaultInstance(); // script: the folder is whatever the script saved
  }

  private static ModelSignature djl(Path dir, URI folder, String framework, List<String> files) {
    JsonNode m = descriptor(dir, folder, "model.json", "a Kiln " + framework + " model");
    if (!"kiln-djl-v1".equals(m.path("format").asText())) {
      throw RegistryException.invalid(folder + "model.json: format '" + m.path("format").asText()
          + "' is not kiln-djl-v1, so this is not a Kiln " + framework + " model");
    }
    sameAlgorithm(m, folder + "model.json", framework);
    String params = m.path("params_file").asText();
    if (!files.contains(params)) {
      throw RegistryException.invalid("model folder " + folder + " has no parameters file '" + params
          + "' (named by model.json)");
    }
    ModelSignature.Builder s = ModelSignature.newBuilder();
    ModelTensorSpec.Builder in = ModelTensorSpec.newBuilder().setName("input").setDatatype("FP32").addShape(-1);
    m.path("input_shape").forEach(d -> in.addShape(d.asLong()));
    s.addInputs(in);
    s.addOutputs(ModelTensorSpec.newBuilder().setName("scores").setDatatype("FP32").addShape(-1)
        .addShape(m.path("num_classes").asLong()));
    return s.build();
  }

  private static ModelSignature builtIn(Path dir, URI folder, String framework) {
    JsonNode m = descriptor(dir, folder, "kiln-model.json", "a Kiln " + framework + " model");
    sameAlgorithm(m, folder + "kiln-model.json", framework);
    ModelSignature.Builder s = ModelSignature.newBuilder();
    if (m.has("num_features")) {
      s.addInputs(ModelTensorSpec.newBuilder().setName("input").setDatatype("FP32").addShape(-1)
          .addShape(m.path("num_features").asLong()));
    }
    ModelTensorSpec.Builder out = ModelTensorSpec.newBuilder().setName("predictions").setDatatype("FP32").addShape(-1);
    if (framework.equals("xgboost") && m.path("num_class").asInt() > 1
        && m.path("objective").asText().equals("multi:softprob")) {
      out.addShape(m.path("num_class").asLong());
    }
    return s.addOutputs(out).build();
  }

  private static ModelSignature torchscript(Path dir, URI folder, List<String> files) {
    String model = files.stream().filter(f -> TORCHSCRIPT_SUFFIXES.stream().anyMatch(f::endsWith)).findFirst()
        .orElseThrow(() -> RegistryException.invalid("model folder " + folder + " has no TorchScript file (one of "
            + String.join(", ", TORCHSCRIPT_SUFFIXES) + "); it holds " + String.join(", ", files.subList(0, Math.min(10, files.size())))));
    // torch.jit.save writes a zip archive: a file that is not one is not a TorchScript model.
    byte[] magic = new byte[4];
    try (InputStream in = Files.newInputStream(dir.resolve(model))) {
      if (in.readNBytes(magic, 0, 4) < 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4) {
        throw RegistryException.invalid(folder + model + " is not a TorchScript archive (not a zip file as "
            + "torch.jit.save writes)");
      }
    } catch (IOException e) {
      throw RegistryException.invalid("cannot read " + folder + model + ": " + e.getMessage());
    }
    return ModelSignature.getDefaultInstance();
  }

  private static JsonNode descriptor(Path dir, URI folder, String name, String what) {
    Path f = dir.resolve(name);
    if (!Files.isRegularFile(f)) {
      throw RegistryException.invalid("model folder " + folder + " has no " + name + ", so it is not " + what);
    }
    try {
      return JSON.readTree(f.toFile());
    } catch (IOException e) {
      throw RegistryException.invalid(folder + name + " is not valid JSON: " + e.getMessage());
    }
  }

  private static void sameAlgorithm(JsonNode m, String where, String framework) {
    String algorithm = m.path("algorithm").asText("");
    if (!algorithm.isEmpty() && !algorithm.equals(framework)) {
      throw RegistryException.invalid(where + " says algorithm '" + algorithm + "', not '" + framework + "'");
    }
  }

  /** Names of the folder's regular files (nested ones as relative paths), without temporary files. */
  private static List<String> files(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString())
          .filter(n -> !n.endsWith(".tmp")).sorted().toList();
    } catch (IOException e) {
      throw RegistryException.invalid("cannot list model folder " + dir.toUri() + ": " + e.getMessage());
    }
  }
}

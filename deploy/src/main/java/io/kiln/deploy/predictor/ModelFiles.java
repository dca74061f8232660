package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/** Reading the files of a model folder, with errors that name the file. */
final class ModelFiles {
  static final ObjectMapper JSON = new ObjectMapper();

  private ModelFiles() {}

  static JsonNode json(Path file) throws ModelLoadException {
    if (!Files.isRegularFile(file)) throw new ModelLoadException(file, "missing");
    try {
      JsonNode n = JSON.readTree(file.toFile());
      if (n == null || !n.isObject()) throw new ModelLoadException(file, "not a JSON object");
      return n;
    } catch (IOException e) {
      if (e instanceof ModelLoadException m) throw m;
      throw new ModelLoadException(file, "corrupt JSON", e);
    }
  }

  /** A required field of a descriptor. */
  static JsonNode field(JsonNode o, String name, Path file) throws ModelLoadException {
    JsonNode v = o.get(name);
    if (v == null || v.isNull()) throw new ModelLoadException(file, "no '" + name + "' field");
    return v;
  }

  /** A little-endian float32 file of exactly {@code count} values. */
  static float[] float32(Path file, long count) throws ModelLoadException {
    if (!Files.isRegularFile(file)) throw new ModelLoadException(file, "missing");
    try {
      long size = Files.size(file);
      if (size != count * 4) {
        throw new ModelLoadException(file, "corrupt: " + size + " bytes, expected " + (count * 4) + " (" + count
            + " float32 values)");
      }
      ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
      float[] out = new float[(int) count];
      b.asFloatBuffer().get(out);
      return out;
    } catch (IOException e) {
      if (e instanceof ModelLoadException m) throw m;
      throw new ModelLoadException(file, "unreadable", e);
    }
  }

  static double[][] matrix(JsonNode a, Path file, String name) throws ModelLoadException {
    if (a == null || !a.isArray()) throw new ModelLoadException(file, "'" + name + "' is not an array of arrays");
    double[][] m = new double[a.size()][];
    for (int i = 0; i < m.length; i++) m[i] = vector(a.get(i), file, name);
    return m;
  }

  static double[] vector(JsonNode a, Path file, String name) throws ModelLoadException {
    if (a == null || !a.isArray()) throw new ModelLoadException(file, "'" + name + "' is not an array");
    double[] v = new double[a.size()];
    for (int i = 0; i < v.length; i++) v[i] = a.get(i).asDouble();
    return v;
  }

  /** True when the descriptor says inputs were scaled from 0..255 pixels (IDX data): the server scales too. */
  static boolean pixelScaled(JsonNode descriptor) {
    JsonNode in = descriptor.get("input");
    JsonNode pre = in != null ? in.get("preprocessing") : descriptor.get("preprocessing");
    return pre != null && pre.asText().startsWith("pixel / 255");
  }

  /** Bytes of every file in a folder (the memory estimate of a loaded model). */
  static long folderBytes(Path folder) {
    try (var s = Files.walk(folder)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    } catch (IOException e) {
      return 0;
    }
  }
}

package io.kiln.worker.checkpoint;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * What {@code checkpoint.json} says: the run the checkpoint belongs to (algorithm, hyperparameters,
 * optimizer, data-parallel layout), its position, and where each tensor lies in {@code state.bin}
 * (float32, little-endian, tensors back to back in the order listed: the parameters in parameter
 * order, then their momentum buffers in the same order), with the CRC32 of the whole file.
 *
 * <pre>{@code
 * {"format": "kiln-checkpoint-v1", "algorithm": "mlp", "hyperparameters": {"hidden": "256,128", ...},
 *  "optimizer": {"name": "momentum_sgd", "learning_rate": 0.05, "momentum": 0.9},
 *  "position": {"global_step": 500, "epoch": 1, "step_in_epoch": 500, "steps_per_epoch": 937, "epoch_end": false},
 *  "training": {"epochs": 1, "world_size": 1, "batch_size": 64, "seed": 0, "train_samples": 60000},
 *  "state": {"file": "state.bin", "dtype": "float32", "byte_order": "little_endian", "bytes": 1881168,
 *            "crc32": 1234567890},
 *  "tensors": [{"name": "01Linear_weight", "kind": "parameter", "shape": [256, 784], "offset": 0, "count": 200704}, ...,
 *              {"name": "01Linear_weight", "kind": "momentum", "shape": [256, 784], "offset": 940584, ...}, ...],
 *  "job_id": "job-1", "task_id": "job-1-r0", "created_at": "2026-11-26T14:30:12Z"}
 * }</pre>
 *
 * @param position null in a layout (before any checkpoint is taken)
 */
public record CheckpointMetadata(String algorithm, Map<String, String> hyperparameters, String optimizer,
    float learningRate, float momentum, Position position, int epochs, int worldSize, int batchSize, long seed,
    int trainSamples, List<TensorInfo> tensors, long dataBytes, long crc32, String jobId, String taskId,
    String createdAt) {

  public static final String FORMAT = "kiln-checkpoint-v1";
  public static final String JSON_FILE = "checkpoint.json";
  public static final String DATA_FILE = "state.bin";
  public static final String KIND_PARAMETER = "parameter";
  public static final String KIND_MOMENTUM = "momentum";
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

  /**
   * Where a checkpoint was taken: after {@code globalStep} optimizer steps, {@code stepInEpoch} of
   * them in 1-based epoch {@code epoch} ({@code epochEnd} when that epoch is complete).
   */
  public record Position(long globalStep, int epoch, int stepInEpoch, int stepsPerEpoch, boolean epochEnd,
      long sampleOffset) {
    /**
     * A position without a sample offset (checkpoints written before elastic training): the offset
     * is {@code stepInEpoch} global batches.
     */
    public Position(long globalStep, int epoch, int stepInEpoch, int stepsPerEpoch, boolean epochEnd) {
      this(globalStep, epoch, stepInEpoch, stepsPerEpoch, epochEnd, -1);
    }

    /** True when the checkpoint records how many samples of its epoch were consumed. */
    public boolean hasSampleOffset() {
      return sampleOffset >= 0;
    }

    /** The 1-based epoch training continues in. */
    public int resumeEpoch() {
      return epochEnd ? epoch + 1 : epoch;
    }

    /** Steps of {@link #resumeEpoch()} already done: training continues with 0-based step index {@code resumeStepInEpoch()}. */
    public int resumeStepInEpoch() {
      return epochEnd ? 0 : stepInEpoch;
    }
  }

  /** One array in state.bin: {@code count} float32 values from byte {@code offset}. */
  public record TensorInfo(String name, String kind, long[] shape, long offset, long count) {
    public String describe() {
      return kind + " " + name + " " + shapeString(shape);
    }
  }

  public CheckpointMetadata {
    hyperparameters = Map.copyOf(hyperparameters);
    tensors = List.copyOf(tensors);
  }

  /**
   * A layout for {@code names}/{@code shapes}: each parameter, then each one's momentum buffer,
   * back to back (offsets in bytes); no position, CRC, timestamp or ids yet (see {@link #taken}).
   */
  public static CheckpointMetadata layout(String algorithm, Map<String, String> hyperparameters, String optimizer,
      float learningRate, float momentum, int epochs, int worldSize, int batchSize, long seed, int trainSamples,
      List<String> names, List<long[]> shapes) {
    List<TensorInfo> tensors = new ArrayList<>();
    long offset = 0;
    for (String kind : List.of(KIND_PARAMETER, KIND_MOMENTUM)) {
      for (int i = 0; i < names.size(); i++) {
        long count = 1;
        for (long d : shapes.get(i)) count = Math.multiplyExact(count, d);
        tensors.add(new TensorInfo(names.get(i), kind, shapes.get(i).clone(), offset, count));
        offset += count * Float.BYTES;
      }
    }
    return new CheckpointMetadata(algorithm, hyperparameters, optimizer, learningRate, momentum, null, epochs,
        worldSize, batchSize, seed, trainSamples, tensors, offset, 0, "", "", "");
  }

  /** This layout, taken at {@code p}, with the data's CRC32, a timestamp and who took it. */
  public CheckpointMetadata taken(Position p, long crc, String createdAtIso, String jobId, String taskId) {
    return new CheckpointMetadata(algorithm, hyperparameters, optimizer, learningRate, momentum, p, epochs,
        worldSize, batchSize, seed, trainSamples, tensors, dataBytes, crc, jobId, taskId, createdAtIso);
  }

  /** Number of float values in state.bin. */
  public long floatCount() {
    return dataBytes / Float.BYTES;
  }

  public String toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", FORMAT);
    m.put("algorithm", algorithm);
    m.put("hyperparameters", new TreeMap<>(hyperparameters));
    Map<String, Object> opt = new LinkedHashMap<>();
    opt.put("name", optimizer);
    opt.put("learning_rate", learningRate);
    opt.put("momentum", momentum);
    m.put("optimizer", opt);
    if (position != null) {
      Map<String, Object> p = new LinkedHashMap<>();
      p.put("global_step", position.globalStep());
      p.put("epoch", position.epoch());
      p.put("step_in_epoch", position.stepInEpoch());
      p.put("steps_per_epoch", position.stepsPerEpoch());
      p.put("epoch_end", position.epochEnd());
      if (position.hasSampleOffset()) p.put("sample_offset", position.sampleOffset());
      m.put("position", p);
    }
    Map<String, Object> t = new LinkedHashMap<>();
    t.put("epochs", epochs);
    t.put("world_size", worldSize);
    t.put("batch_size", batchSize);
    t.put("seed", seed);
    t.put("train_samples", trainSamples);
    m.put("training", t);
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("file", DATA_FILE);
    s.put("dtype", "float32");
    s.put("byte_order", "little_endian");
    s.put("bytes", dataBytes);
    s.put("crc32", crc32);
    m.put("state", s);
    List<Map<String, Object>> ts = new ArrayList<>();
    for (TensorInfo ti : tensors) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("name", ti.name());
      e.put("kind", ti.kind());
      e.put("shape", ti.shape());
      e.put("offset", ti.offset());
      e.put("count", ti.count());
      ts.add(e);
    }
    m.put("tensors", ts);
    m.put("job_id", jobId);
    m.put("task_id", taskId);
    m.put("created_at", createdAt);
    return GSON.toJson(m) + "\n";
  }

  /**
   * Parses checkpoint.json; every problem (not JSON, another format, a missing or malformed field,
   * tensors that do not tile state.bin) is a {@link CheckpointException} naming {@code source}.
   */
  public static CheckpointMetadata fromJson(String json, String source) throws CheckpointException {
    JsonObject o;
    try {
      o = JsonParser.parseString(json).getAsJsonObject();
    } catch (RuntimeException e) {
      throw new CheckpointException(source + ": not a JSON object (" + e.getMessage() + ")", e);
    }
    try {
      String format = str(o, "format");
      if (!FORMAT.equals(format)) {
        throw new CheckpointException(source + ": unsupported format '" + format + "' (expected " + FORMAT + ")");
      }
      Map<String, String> hp = new LinkedHashMap<>();
      if (o.has("hyperparameters")) {
        o.getAsJsonObject("hyperparameters").entrySet().forEach(e -> hp.put(e.getKey(), e.getValue().getAsString()));
      }
      JsonObject opt = obj(o, "optimizer");
      JsonObject p = obj(o, "position");
      Position position = new Position(num(p, "global_step").longValue(), num(p, "epoch").intValue(),
          num(p, "step_in_epoch").intValue(), num(p, "steps_per_epoch").intValue(), bool(p, "epoch_end"),
          p.has("sample_offset") ? num(p, "sample_offset").longValue() : -1);
      JsonObject t = obj(o, "training");
      JsonObject s = obj(o, "state");
      if (!DATA_FILE.equals(str(s, "file")) || !"float32".equals(str(s, "dtype"))
          || !"little_endian".equals(str(s, "byte_order"))) {
        throw new CheckpointException(source + ": unsupported state " + s + " (expected " + DATA_FILE
            + ", float32, little_endian)");
      }
      List<TensorInfo> tensors = new ArrayList<>();
      JsonArray ts = o.getAsJsonArray("tensors");
      if (ts == null) throw new CheckpointException(source + ": missing field 'tensors'");
      for (JsonElement el : ts) {
        JsonObject e = el.getAsJsonObject();
        JsonArray sh = e.getAsJsonArray("shape");
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) shape[i] = sh.get(i).getAsLong();
        tensors.add(new TensorInfo(str(e, "name"), str(e, "kind"), shape, num(e, "offset").longValue(),
            num(e, "count").longValue()));
      }
      CheckpointMetadata m = new CheckpointMetadata(str(o, "algorithm"), hp, str(opt, "name"),
          num(opt, "learning_rate").floatValue(), num(opt, "momentum").floatValue(), position,
          num(t, "epochs").intValue(), num(t, "world_size").intValue(), num(t, "batch_size").intValue(),
          num(t, "seed").longValue(), num(t, "train_samples").intValue(), tensors, num(s, "bytes").longValue(),
          num(s, "crc32").longValue(), optStr(o, "job_id"), optStr(o, "task_id"), optStr(o, "created_at"));
      m.checkLayout(source);
      return m;
    } catch (CheckpointException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new CheckpointException(source + ": malformed (" + e.getMessage() + ")", e);
    }
  }

  /** The tensors tile state.bin exactly, each count matching its shape. */
  private void checkLayout(String source) throws CheckpointException {
    long offset = 0;
    for (TensorInfo t : tensors) {
      long count = 1;
      for (long d : t.shape()) count *= d;
      if (count != t.count() || t.offset() != offset) {
        throw new CheckpointException(source + ": tensor " + t.describe() + " at offset " + t.offset() + " with "
            + t.count() + " values does not fit the layout (expected offset " + offset + ", " + count + " values)");
      }
      offset += count * Float.BYTES;
    }
    if (offset != dataBytes) {
      throw new CheckpointException(source + ": the tensors hold " + offset + " bytes but state.bytes is " + dataBytes);
    }
  }

  /**
   * Fails with a {@link CheckpointException} naming {@code uri} and both values unless a job with
   * these settings can continue from this checkpoint exactly: same algorithm and optimizer, same parameters
   * (names and shapes, in order) with momentum buffers, same seed and training-set size (so every
   * epoch's permutation is the same) and the same global batch ({@code batch_size x world size}: the
   * position in the epoch is a number of global batches, so world size and per-rank batch may
   * change as long as their product does not).
   */
  public void requireCompatible(String uri, String algorithm, String optimizer, int worldSize, int batchSize,
      long seed, int trainSamples, List<String> names, List<long[]> shapes) throws CheckpointException {
    String where = "checkpoint " + uri + " does not fit this job: ";
    if (!this.algorithm.equals(algorithm)) {
      throw new CheckpointException(where + "algorithm '" + this.algorithm + "' in the checkpoint, '" + algorithm
          + "' in the job");
    }
    // With a sample offset the position maps onto any world size (elastic jobs change it anyway).
    boolean offsetKnown = position != null && position.hasSampleOffset();
    if (!offsetKnown && (long) this.batchSize * this.worldSize != (long) batchSize * worldSize) {
      throw new CheckpointException(where + "the checkpoint was taken with world size " + this.worldSize
          + " x batch_size " + this.batchSize + " (global batch " + (long) this.batchSize * this.worldSize
          + "), this job has world size " + worldSize + " x batch_size " + batchSize + " (global batch "
          + (long) batchSize * worldSize + "); the position in the epoch would not map (resume with the same "
          + "global batch)");
    }
    if (this.seed != seed) {
      throw new CheckpointException(where + "seed " + this.seed + " in the checkpoint, " + seed
          + " in the job (the epoch's sample order would differ)");
    }
    if (this.trainSamples != trainSamples) {
      throw new CheckpointException(where + "the checkpoint was trained on " + this.trainSamples
          + " samples, this job's training set has " + trainSamples);
    }
    if (!this.optimizer.equals(optimizer)) {
      throw new CheckpointException(where + "optimizer '" + this.optimizer + "' in the checkpoint, '" + optimizer
          + "' in the job");
    }
    int n = names.size();
    if (tensors.size() != 2 * n) {
      throw new CheckpointException(where + "it holds " + tensors.size() + " arrays, the model needs " + n
          + " parameters and " + n + " momentum buffers");
    }
    for (int k = 0; k < 2 * n; k++) {
      TensorInfo t = tensors.get(k);
      int i = k % n;
      String kind = k < n ? KIND_PARAMETER : KIND_MOMENTUM;
      if (!t.kind().equals(kind) || !t.name().equals(names.get(i)) || !Arrays.equals(t.shape(), shapes.get(i))) {
        throw new CheckpointException(where + "array " + k + " is " + t.describe() + ", the model needs " + kind + " "
            + names.get(i) + " " + shapeString(shapes.get(i)));
      }
    }
  }

  static String shapeString(long[] shape) {
    StringBuilder b = new StringBuilder("(");
    for (int i = 0; i < shape.length; i++) b.append(i > 0 ? ", " : "").append(shape[i]);
    return b.append(")").toString();
  }

  private static JsonObject obj(JsonObject o, String k) {
    JsonElement e = o.get(k);
    if (e == null || !e.isJsonObject()) throw new IllegalArgumentException("missing object '" + k + "'");
    return e.getAsJsonObject();
  }

  private static String str(JsonObject o, String k) {
    JsonElement e = o.get(k);
    if (e == null || e.isJsonNull()) throw new IllegalArgumentException("missing field '" + k + "'");
    return e.getAsString();
  }

  private static String optStr(JsonObject o, String k) {
    JsonElement e = o.get(k);
    return e == null || e.isJsonNull() ? "" : e.getAsString();
  }

  private static Number num(JsonObject o, String k) {
    JsonElement e = o.get(k);
    if (e == null || e.isJsonNull()) throw new IllegalArgumentException("missing field '" + k + "'");
    return e.getAsNumber();
  }

  private static boolean bool(JsonObject o, String k) {
    JsonElement e = o.get(k);
    if (e == null || e.isJsonNull()) throw new IllegalArgumentException("missing field '" + k + "'");
    return e.getAsBoolean();
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "checkpoint(%s step %s, %d arrays, %d bytes)", algorithm,
        position == null ? "-" : Long.toString(position.globalStep()), tensors.size(), dataBytes);
  }
}

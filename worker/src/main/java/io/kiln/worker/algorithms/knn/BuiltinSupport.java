package io.kiln.worker.algorithms.knn;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.worker.algorithms.data.Table;
import io.kiln.worker.algorithms.data.TableFormat;
import io.kiln.worker.algorithms.data.TableReader;
import io.kiln.worker.data.DataException;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.StopSignal;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Shared plumbing of the plain-Java built-ins ({@code knn}, {@code kmeans}): hyperparameter
 * checks that collect every problem, reading the train / validation channels into dense
 * {@code double[][]} rows, and writing float32 binaries and descriptors.
 */
public final class BuiltinSupport {
  public static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping()
      .serializeSpecialFloatingPointValues().create();
  /** Kiln's own hyperparameters every built-in accepts. */
  public static final Set<String> KILN_GENERIC = Set.of("content_type", "max_rows", "_tuning_objective_metric");

  private BuiltinSupport() {}

  /** Dense rows (missing values as 0) with their labels. */
  public record Rows(String source, double[][] x, float[] y) {
    public int rows() {
      return x.length;
    }

    public int cols() {
      return x.length == 0 ? 0 : x[0].length;
    }

    /** Rank {@code rank}'s shard of {@code world}: rows {@code i} with {@code i % world == rank}. */
    public Rows shard(int rank, int world) {
      if (world <= 1) return this;
      int n = (x.length - rank + world - 1) / world;
      double[][] sx = new double[Math.max(0, n)][];
      float[] sy = new float[Math.max(0, n)];
      for (int i = rank, j = 0; i < x.length; i += world, j++) {
        sx[j] = x[i];
        sy[j] = y[i];
      }
      return new Rows(source, sx, sy);
    }
  }

  /** What was read: train, optional validation (null), the format. */
  public record Data(Rows train, Rows validation, TableFormat format) {}

  /** Collects hyperparameter problems; {@link #done} throws them all at once. */
  public static final class Checker {
    private final String algorithm;
    private final Map<String, String> hp;
    private final List<String> problems = new ArrayList<>();

    public Checker(String algorithm, Map<String, String> hp, Set<String> known) {
      this.algorithm = algorithm;
      this.hp = new TreeMap<>(hp);
      List<String> unknown = new ArrayList<>();
      for (String name : this.hp.keySet()) {
        if (!known.contains(name) && !KILN_GENERIC.contains(name) && !name.startsWith("kiln_")) unknown.add(name);
      }
      if (!unknown.isEmpty()) {
        List<String> all = new ArrayList<>(known);
        all.addAll(KILN_GENERIC);
        all.sort(null);
        problems.add("unknown hyperparameter" + (unknown.size() > 1 ? "s " : " ") + String.join(", ", unknown)
            + " (the " + algorithm + " algorithm takes: " + String.join(", ", all) + ")");
      }
    }

    private String raw(String name) {
      String v = hp.get(name);
      return v == null ? null : v.trim();
    }

    /** An integer in [min, max]; {@code def} when absent (null def = required). */
    public Long integer(String name, Long def, long min, long max) {
      String v = raw(name);
      if (v == null) {
        if (def == null) problems.add(name + " is required (an integer in [" + min + ", " + max + "])");
        return def;
      }
      try {
        long n = Long.parseLong(v);
        if (n < min || n > max) {
          problems.add(name + " " + v + " is out of range: must be an integer in [" + min + ", " + max + "]");
          return def;
        }
        return n;
      } catch (NumberFormatException e) {
        problems.add(name + " '" + v + "' is not an integer");
        return def;
      }
    }

    /** A number {@code > min} (open) or {@code >= min}. */
    public double number(String name, double def, double min, boolean open) {
      String v = raw(name);
      if (v == null) return def;
      try {
        double d = Double.parseDouble(v);
        if (Double.isNaN(d) || Double.isInfinite(d) || (open ? d <= min : d < min)) {
          problems.add(name + " " + v + " is out of range: must be " + (open ? "> " : ">= ") + min);
          return def;
        }
        return d;
      } catch (NumberFormatException e) {
        problems.add(name + " '" + v + "' is not a number");
        return def;
      }
    }

    /** One of {@code choices} (case-insensitive, returned lower case); {@code def} when absent (null = required). */
    public String choice(String name, String def, String... choices) {
      String v = raw(name);
      if (v == null) {
        if (def == null) problems.add(name + " is required (one of " + String.join(", ", choices) + ")");
        return def;
      }
      for (String c : choices) if (c.equalsIgnoreCase(v)) return c;
      problems.add(name + " '" + v + "' is not one of " + String.join(", ", choices));
      return def;
    }

    /** A number in [min, max]. */
    public double range(String name, double def, double min, double max) {
      String v = raw(name);
      if (v == null) return def;
      try {
        double d = Double.parseDouble(v);
        if (!(d >= min && d <= max)) {
          problems.add(name + " " + v + " is out of range: must be in [" + min + ", " + max + "]");
          return def;
        }
        return d;
      } catch (NumberFormatException e) {
        problems.add(name + " '" + v + "' is not a number");
        return def;
      }
    }

    /** {@code true}/{@code false} (also 1/0). */
    public boolean bool(String name, boolean def) {
      String v = raw(name);
      if (v == null) return def;
      if (v.equalsIgnoreCase("true") || v.equals("1")) return true;
      if (v.equalsIgnoreCase("false") || v.equals("0")) return false;
      problems.add(name + " '" + v + "' is not true or false");
      return def;
    }

    public void problem(String p) {
      problems.add(p);
    }

    public void done() {
      if (!problems.isEmpty()) throw new IllegalArgumentException(String.join("; ", problems));
    }

    public String contentType() {
      return raw("content_type");
    }

    public int maxRows() {
      Long n = integer("max_rows", 0L, 1, Integer.MAX_VALUE);
      return n == null ? 0 : n.intValue();
    }
  }

  /**
   * The common start of a single-worker built-in: warn about unused channels and extra ranks, load
   * the train (and validation) data, refuse an empty training set, and log what was read.
   */
  public static Data loadForSingleWorker(io.kiln.worker.task.TaskRunner.Context ctx, String algorithm,
      String contentType, int maxRows, boolean csvLabel) throws DataException {
    TaskEvents events = ctx.events();
    if (Math.max(1, ctx.assignment().getWorldSize()) > 1) {
      events.warn(algorithm + " runs on one worker: rank " + ctx.assignment().getRank()
          + " computes the same model as the others");
    }
    return loadAll(ctx, algorithm, contentType, maxRows, csvLabel);
  }

  /**
   * Warns about unused channels, loads all of the train (and validation) data on this rank, refuses
   * an empty training set and logs what was read. Distributed built-ins then keep their {@link Rows#shard}.
   */
  public static Data loadAll(io.kiln.worker.task.TaskRunner.Context ctx, String algorithm,
      String contentType, int maxRows, boolean csvLabel) throws DataException {
    JobSpec spec = ctx.assignment().getSpec();
    TaskEvents events = ctx.events();
    warnChannels(spec, events, algorithm);
    long t0 = System.nanoTime();
    Data data = load(spec, contentType, maxRows, csvLabel, ctx.stop());
    Rows train = data.train();
    if (train.rows() == 0) throw new DataException("channel 'train': no data rows in " + train.source());
    events.info(String.format(java.util.Locale.ROOT, "loaded %s: %d training rows x %d features%s in %.1f s (%s)",
        data.format().contentType(), train.rows(), train.cols(), data.validation() == null ? ", no validation set"
            : ", " + data.validation().rows() + " validation rows", (System.nanoTime() - t0) / 1e9, train.source()));
    return data;
  }

  public static void warnChannels(JobSpec spec, TaskEvents events, String algorithm) {
    for (String channel : spec.getChannelsMap().keySet()) {
      if (!channel.equals("train") && !channel.equals("validation")) {
        events.warn("channel '" + channel + "' is not used by the " + algorithm
            + " algorithm (it reads train and validation)");
      }
    }
  }

  /**
   * Reads the train channel (first {@code maxRows} rows when > 0) and the optional validation
   * channel, as the xgboost built-in does (IDX: the t10k split is the validation set unless a
   * validation channel is given). With {@code csvLabel} false, a CSV's first column is a feature,
   * not a label (SageMaker's unsupervised built-ins read CSV without a label column).
   */
  public static Data load(JobSpec spec, String contentType, int maxRows, boolean csvLabel, StopSignal stop)
      throws DataException {
    String trainUri = spec.getChannelsOrDefault("train", "");
    if (trainUri.isBlank()) throw new IllegalArgumentException("channels.train is required");
    String validationUri = spec.getChannelsOrDefault("validation", "");
    TableFormat format = contentType != null ? TableFormat.fromContentType(contentType)
        : TableReader.detect("train", trainUri);
    if (format == TableFormat.IDX) {
      TableReader.IdxChannels idx = TableReader.readIdxChannels(trainUri, validationUri, maxRows, stop);
      Path dir = idx.trainDir();
      Table train = idx.train();
      Table validation = idx.validation();
      return new Data(rows(train, train.cols(), true), validation == null ? null
          : rows(validation, train.cols(), true), format);
    }
    Table train = TableReader.read("train", trainUri, format, new TableReader.Options(maxRows, false, stop));
    stop.check();
    Table validation = null;
    if (!validationUri.isBlank()) {
      TableFormat vf = contentType != null ? format : TableReader.detect("validation", validationUri);
      if (vf != format) {
        throw new DataException("channel 'validation' is " + vf.contentType() + " but channel 'train' is "
            + format.contentType());
      }
      validation = TableReader.read("validation", validationUri, vf, new TableReader.Options(0, false, stop));
      if (validation.isDense() && validation.cols() != train.cols()) {
        throw new DataException("channel 'validation' (" + validation.source() + ") has " + validation.cols()
            + " features per row but channel 'train' (" + train.source() + ") has " + train.cols());
      }
    }
    int cols = Math.max(train.cols(), validation == null ? 0 : validation.cols());
    boolean label = csvLabel || format != TableFormat.CSV;
    return new Data(rows(train, cols, label), validation == null ? null : rows(validation, cols, label), format);
  }

  /** Dense double rows of {@code cols} features; missing values are 0; without {@code label} the label is feature 0. */
  static Rows rows(Table t, int cols, boolean label) {
    int n = t.rows();
    int off = label ? 0 : 1;
    double[][] x = new double[n][cols + off];
    float[] y = t.labels();
    if (t.isDense()) {
      float[] v = t.denseValues();
      int c = t.cols();
      for (int i = 0; i < n; i++) {
        for (int j = 0; j < c; j++) {
          float f = v[i * c + j];
          x[i][j + off] = Float.isNaN(f) ? 0 : f;
        }
      }
    } else {
      long[] ip = t.indptr();
      int[] idx = t.indices();
      float[] v = t.values();
      for (int i = 0; i < n; i++) {
        for (long p = ip[i]; p < ip[i + 1]; p++) {
          float f = v[(int) p];
          x[i][idx[(int) p] + off] = Float.isNaN(f) ? 0 : f;
        }
      }
    }
    if (!label) {
      for (int i = 0; i < n; i++) x[i][0] = y[i];
    }
    return new Rows(t.source(), x, y);
  }

  /** Row-major little-endian float32 of {@code x}, followed by {@code tail} (may be null). */
  public static byte[] float32(double[][] x, float[] tail) {
    int cols = x.length == 0 ? 0 : x[0].length;
    ByteBuffer b = ByteBuffer.allocate(4 * (x.length * cols + (tail == null ? 0 : tail.length)))
        .order(ByteOrder.LITTLE_ENDIAN);
    for (double[] row : x) for (double v : row) b.putFloat((float) v);
    if (tail != null) for (float v : tail) b.putFloat(v);
    return b.array();
  }

  /** Writes {@code bytes} then the JSON descriptor (last: a folder with it is complete). */
  public static void write(URI modelUri, String file, byte[] bytes, String descriptor, Map<String, Object> d)
      throws IOException {
    ArtifactStore store = ArtifactStore.forRoot(modelUri);
    store.put(modelUri.resolve(file), bytes);
    store.put(modelUri.resolve(descriptor), (GSON.toJson(d) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  /** Squared L2 distance. */
  public static double l2sq(double[] a, double[] b) {
    double s = 0;
    for (int j = 0; j < a.length; j++) {
      double d = a[j] - b[j];
      s += d * d;
    }
    return s;
  }

  public static double norm(double[] a) {
    double s = 0;
    for (double v : a) s += v * v;
    return Math.sqrt(s);
  }

  /** A descriptor's common head: {@code format} and {@code algorithm}, in order. */
  public static Map<String, Object> descriptor(String format, String algorithm) {
    Map<String, Object> d = new java.util.LinkedHashMap<>();
    d.put("format", format);
    d.put("algorithm", algorithm);
    return d;
  }

  /**
   * Adds the common tail ({@code input}, {@code hyperparameters}, {@code metrics}, ids, time) to
   * {@code d}, writes {@code files} (name to bytes) then {@code descriptor} (last: a folder with it
   * is complete) to the model folder, and the job's metrics.json.
   */
  public static void writeModel(io.kiln.worker.task.TaskRunner.Context ctx, URI modelUri, Map<String, byte[]> files,
      Map<String, Object> d, Data data, String label, Map<String, String> hyperparameters,
      Map<String, Double> metrics) throws IOException {
    Map<String, Object> input = new java.util.LinkedHashMap<>();
    input.put("content_type", data.format().contentType());
    input.put("missing", "0");
    if (label != null) input.put("label", label);
    if (data.format() == TableFormat.IDX) input.put("preprocessing", "pixel / 255, row-major");
    d.put("input", input);
    d.put("hyperparameters", hyperparameters);
    d.put("metrics", new TreeMap<>(metrics));
    d.put("job_id", ctx.assignment().getJobId());
    d.put("task_id", ctx.assignment().getTaskId());
    d.put("created_at", java.time.Instant.now().toString());
    ArtifactStore store = ArtifactStore.forRoot(modelUri);
    for (Map.Entry<String, byte[]> f : files.entrySet()) store.put(modelUri.resolve(f.getKey()), f.getValue());
    store.put(modelUri.resolve("kiln-model.json"), (GSON.toJson(d) + "\n").getBytes(StandardCharsets.UTF_8));
    io.kiln.worker.training.ModelArtifacts.writeMetrics(ArtifactStore.forRoot(ctx.jobUri()),
        io.kiln.worker.training.ModelArtifacts.normalize(ctx.jobUri().resolve("metrics.json")), metrics);
    ctx.events().info("model written to " + modelUri);
  }

  /** JSON bytes of {@code o} (pretty, NaN allowed). */
  public static byte[] json(Object o) {
    return (GSON.toJson(o) + "\n").getBytes(StandardCharsets.UTF_8);
  }

  /** {@code x} as nested lists (for JSON). */
  public static List<List<Double>> lists(double[][] x) {
    List<List<Double>> out = new ArrayList<>(x.length);
    for (double[] r : x) out.add(list(r));
    return out;
  }

  public static List<Double> list(double[] r) {
    List<Double> l = new ArrayList<>(r.length);
    for (double v : r) l.add(v);
    return l;
  }
}

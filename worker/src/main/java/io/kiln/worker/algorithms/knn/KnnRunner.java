package io.kiln.worker.algorithms.knn;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.algorithms.data.TableFormat;
import io.kiln.worker.algorithms.knn.BuiltinSupport.Rows;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The {@code knn} built-in: k-nearest neighbours with SageMaker's hyperparameter names
 * (docs/algorithms.md). Training stores the (optionally subsampled) training set as the model
 * ({@code data.f32} + {@code kiln-model.json}); the validation set is then classified by majority
 * vote (ties: the class of the nearest neighbour among the tied classes) or regressed by the mean
 * of the k neighbours' labels. Search is exact (brute force) or through an {@link IvfIndex}.
 */
public final class KnnRunner implements TaskRunner {
  public static final String NAME = "knn";
  public static final String DESCRIPTOR = "kiln-model.json";
  public static final String DATA_FILE = "data.f32";
  public static final String IVF_FILE = "ivf.f32";
  public static final String FORMAT = "kiln-knn-v1";
  private static final long PROGRESS_INTERVAL_NANOS = 1_000_000_000L;
  private static final int BATCH = 64;

  /** The checked hyperparameters. */
  public record Params(int k, boolean classifier, int sampleSize, boolean cosine, String indexType, int nlist,
      int nprobe, long seed, int maxRows, String contentType, Map<String, String> effective) {

    public static Params parse(Map<String, String> hp) {
      BuiltinSupport.Checker c = new BuiltinSupport.Checker(NAME, hp,
          Set.of("k", "predictor_type", "sample_size", "distance", "index_type", "faiss_index_ivf_nlist",
              "faiss_index_nprobe", "seed", "feature_dim"));
      Long k = c.integer("k", null, 1, 1024);
      String type = c.choice("predictor_type", null, "classifier", "regressor");
      Long sample = c.integer("sample_size", 0L, 1, Integer.MAX_VALUE);
      String distance = c.choice("distance", "l2", "l2", "cosine");
      String index = hp.get("index_type");
      if (index != null && index.trim().equalsIgnoreCase("faiss.IVFPQ")) {
        c.problem("index_type 'faiss.IVFPQ' is not available: exact (brute-force search) and faiss.IVFFlat "
            + "(inverted lists, exact distances) are implemented");
        index = null;
      }
      index = c.choice("index_type", "exact", "exact", "faiss.IVFFlat");
      boolean ivf = "faiss.IVFFlat".equals(index);
      Long nlist = auto(hp, "faiss_index_ivf_nlist") ? 0L : c.integer("faiss_index_ivf_nlist", 0L, 1, 1_000_000);
      Long nprobe = auto(hp, "faiss_index_nprobe") ? 0L : c.integer("faiss_index_nprobe", 0L, 1, 1_000_000);
      if (!ivf && (hp.containsKey("faiss_index_ivf_nlist") || hp.containsKey("faiss_index_nprobe"))) {
        c.problem("faiss_index_ivf_nlist and faiss_index_nprobe are only for index_type faiss.IVFFlat");
      }
      Long seed = c.integer("seed", 0L, Long.MIN_VALUE, Long.MAX_VALUE);
      c.integer("feature_dim", 0L, 1, Integer.MAX_VALUE);
      int maxRows = c.maxRows();
      c.done();
      Map<String, String> eff = new TreeMap<>(hp);
      eff.put("k", Long.toString(k));
      eff.put("predictor_type", type);
      eff.put("distance", distance);
      eff.put("index_type", index);
      eff.put("seed", Long.toString(seed));
      return new Params(k.intValue(), type.equals("classifier"), sample.intValue(), distance.equals("cosine"),
          index, nlist.intValue(), nprobe.intValue(), seed, maxRows, c.contentType(), eff);
    }

    private static boolean auto(Map<String, String> hp, String name) {
      String v = hp.get(name);
      return v != null && v.trim().equalsIgnoreCase("auto");
    }
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Outcome run(Context ctx) throws Exception {
    TaskAssignment a = ctx.assignment();
    JobSpec spec = a.getSpec();
    TaskEvents events = ctx.events();
    StopSignal stop = ctx.stop();
    int cpus = Math.max(1, spec.getResources().getCpusPerWorker());
    Params p = Params.parse(spec.getHyperparametersMap());
    long t0 = System.nanoTime();
    BuiltinSupport.Data data = BuiltinSupport.loadForSingleWorker(ctx, NAME, p.contentType(), p.maxRows(), true);
    Rows train = data.train();
    if (p.sampleSize() > 0 && p.sampleSize() < train.rows()) {
      train = sample(train, p.sampleSize(), p.seed());
      events.info("sample_size " + p.sampleSize() + ": kept " + train.rows() + " training rows (seed " + p.seed() + ")");
    }
    if (p.k() > train.rows()) {
      throw new IllegalArgumentException("k " + p.k() + " is larger than the " + train.rows() + " training rows");
    }
    float[] classes = null;
    if (p.classifier()) {
      classes = classes(train);
      if (data.validation() != null) checkIntegerLabels(data.validation());
    }
    IvfIndex index = null;
    if (p.indexType().equals("faiss.IVFFlat")) {
      long tIndex = System.nanoTime();
      int nlist = p.nlist() > 0 ? p.nlist() : IvfIndex.autoNlist(train.rows());
      index = IvfIndex.build(train.x(), nlist, p.nprobe() > 0 ? p.nprobe() : IvfIndex.autoNprobe(nlist),
          p.cosine(), p.seed());
      events.info(String.format(Locale.ROOT, "faiss.IVFFlat index: %d lists, nprobe %d, built in %.2f s",
          index.nlist(), index.nprobe, (System.nanoTime() - tIndex) / 1e9));
    }
    Model model = new Model(train.x(), train.y(), p.k(), p.classifier(), p.cosine(), index);
    double trainSeconds = (System.nanoTime() - t0) / 1e9;

    Map<String, Double> metrics = new LinkedHashMap<>();
    Rows v = data.validation();
    long tEval = System.nanoTime();
    if (v != null && v.rows() > 0) {
      double[] pred = predict(model, v.x(), cpus, events, stop);
      double a0 = 0;
      for (int i = 0; i < pred.length; i++) {
        if (p.classifier()) {
          if (pred[i] == v.y()[i]) a0++;
        } else {
          double d = pred[i] - v.y()[i];
          a0 += d * d;
        }
      }
      metrics.put(p.classifier() ? "validation_accuracy" : "validation_rmse",
          p.classifier() ? a0 / pred.length : Math.sqrt(a0 / pred.length));
      metrics.put("validation_rows", (double) v.rows());
    } else {
      events.info("no validation set: the model is stored without evaluation");
    }
    double evalSeconds = (System.nanoTime() - tEval) / 1e9;
    metrics.put("k", (double) p.k());
    metrics.put("train_rows", (double) train.rows());
    metrics.put("features", (double) train.cols());
    metrics.put("train_seconds", trainSeconds);
    metrics.put("evaluation_seconds", evalSeconds);
    StringBuilder summary = new StringBuilder(String.format(Locale.ROOT, "knn k=%d (%s, %s): %d stored rows",
        p.k(), p.classifier() ? "classifier" : "regressor", p.cosine() ? "cosine" : "l2", train.rows()));
    for (String key : List.of("validation_accuracy", "validation_rmse")) {
      if (metrics.containsKey(key)) summary.append(String.format(Locale.ROOT, "; %s %.4f", key, metrics.get(key)));
    }
    events.info(summary.toString());

    URI modelUri = ModelArtifacts.folder(ctx.modelUri());
    if (a.getRank() == 0) {
      stop.check();
      Map<String, Object> d = new LinkedHashMap<>();
      d.put("format", FORMAT);
      d.put("algorithm", NAME);
      d.put("k", p.k());
      d.put("predictor_type", p.classifier() ? "classifier" : "regressor");
      d.put("distance", p.cosine() ? "cosine" : "l2");
      d.put("index_type", p.indexType());
      if (index != null) {
        d.put("faiss_index_ivf_nlist", index.nlist());
        d.put("faiss_index_nprobe", index.nprobe);
        d.put("ivf_file", IVF_FILE);
        d.put("ivf_layout", "little-endian float32: nlist x num_features centroids (row-major, on unit-length rows "
            + "for cosine), then num_rows list ids (the list of each stored row)");
      }
      d.put("num_features", train.cols());
      d.put("num_rows", train.rows());
      if (classes != null) {
        List<Double> cl = new ArrayList<>();
        for (float c : classes) cl.add((double) c);
        d.put("classes", cl);
      }
      d.put("data_file", DATA_FILE);
      d.put("data_layout", "little-endian float32: num_rows x num_features features (row-major), then num_rows labels");
      Map<String, Object> input = new LinkedHashMap<>();
      input.put("content_type", data.format().contentType());
      input.put("missing", "0");
      if (data.format() == TableFormat.IDX) input.put("preprocessing", "pixel / 255, row-major");
      d.put("input", input);
      d.put("hyperparameters", p.effective());
      d.put("metrics", new TreeMap<>(metrics));
      d.put("job_id", a.getJobId());
      d.put("task_id", a.getTaskId());
      d.put("created_at", Instant.now().toString());
      if (index != null) {
        float[] ids = new float[index.listOf.length];
        for (int i = 0; i < ids.length; i++) ids[i] = index.listOf[i];
        ArtifactStore.forRoot(modelUri).put(modelUri.resolve(IVF_FILE), BuiltinSupport.float32(index.centroids, ids));
      }
      BuiltinSupport.write(modelUri, DATA_FILE, BuiltinSupport.float32(train.x(), train.y()), DESCRIPTOR, d);
      ModelArtifacts.writeMetrics(ArtifactStore.forRoot(ctx.jobUri()),
          ModelArtifacts.normalize(ctx.jobUri().resolve("metrics.json")), metrics);
      events.info("model written to " + modelUri);
    }
    return new Outcome(modelUri.toString(), metrics);
  }

  /** {@code n} rows drawn without replacement (seeded), in their original order. */
  static Rows sample(Rows t, int n, long seed) {
    int[] idx = new int[t.rows()];
    for (int i = 0; i < idx.length; i++) idx[i] = i;
    Random r = new Random(seed);
    for (int i = 0; i < n; i++) {
      int j = i + r.nextInt(idx.length - i);
      int tmp = idx[i];
      idx[i] = idx[j];
      idx[j] = tmp;
    }
    int[] keep = Arrays.copyOf(idx, n);
    Arrays.sort(keep);
    double[][] x = new double[n][];
    float[] y = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = t.x()[keep[i]];
      y[i] = t.y()[keep[i]];
    }
    return new Rows(t.source(), x, y);
  }

  private static void checkIntegerLabels(Rows t) {
    for (int i = 0; i < t.rows(); i++) {
      float l = t.y()[i];
      if (Float.isNaN(l) || l != Math.rint(l)) {
        throw new IllegalArgumentException(t.source() + ": row " + (i + 1) + " has label " + l
            + ", but predictor_type classifier needs integer class labels");
      }
    }
  }

  /** The sorted distinct labels (classifier: integers). */
  static float[] classes(Rows t) {
    checkIntegerLabels(t);
    TreeSet<Float> s = new TreeSet<>();
    for (float l : t.y()) s.add(l);
    float[] c = new float[s.size()];
    int i = 0;
    for (float f : s) c[i++] = f;
    return c;
  }

  /** The stored training set and how it predicts. */
  public static final class Model {
    private final double[][] x;
    private final float[] y;
    private final double[] norms;
    private final int k;
    private final boolean classifier;
    private final boolean cosine;
    private final IvfIndex index;

    public Model(double[][] x, float[] y, int k, boolean classifier, boolean cosine) {
      this(x, y, k, classifier, cosine, null);
    }

    /** With an {@link IvfIndex} (null: exact search). */
    public Model(double[][] x, float[] y, int k, boolean classifier, boolean cosine, IvfIndex index) {
      this.index = index;
      this.x = x;
      this.y = y;
      this.k = k;
      this.classifier = classifier;
      this.cosine = cosine;
      this.norms = new double[x.length];
      if (cosine) for (int i = 0; i < x.length; i++) norms[i] = BuiltinSupport.norm(x[i]);
    }

    /** Distance of {@code q} (with norm {@code qn}, cosine only) to stored row {@code i}. */
    double distance(double[] q, double qn, int i) {
      if (!cosine) return BuiltinSupport.l2sq(q, x[i]);
      double dot = 0;
      double[] r = x[i];
      for (int j = 0; j < q.length; j++) dot += q[j] * r[j];
      double den = qn * norms[i];
      return den == 0 ? 1 : 1 - dot / den;
    }

    /**
     * The k nearest stored rows, nearest first (equal distances: lower row index first); with an
     * index, among the rows of its probed lists (exact search when those hold fewer than k rows).
     */
    public int[] neighbours(double[] q) {
      double qn = cosine ? BuiltinSupport.norm(q) : 0;
      int[] cand = index == null ? null : index.candidates(q);
      if (cand != null && cand.length < Math.min(k, x.length)) cand = null; // too few in the probed lists: exact
      int m = cand == null ? x.length : cand.length;
      int kk = Math.min(k, m);
      int[] idx = new int[kk];
      double[] dist = new double[kk];
      int n = 0;
      for (int c = 0; c < m; c++) {
        int i = cand == null ? c : cand[c];
        double d = distance(q, qn, i);
        if (n == kk && d >= dist[n - 1]) continue;
        int pos = n == kk ? n - 1 : n++;
        while (pos > 0 && dist[pos - 1] > d) {
          dist[pos] = dist[pos - 1];
          idx[pos] = idx[pos - 1];
          pos--;
        }
        dist[pos] = d;
        idx[pos] = i;
      }
      return idx;
    }

    /** Majority vote (ties: the tied class with the nearest neighbour) or the mean label. */
    public double predict(double[] q) {
      int[] nb = neighbours(q);
      if (!classifier) {
        double s = 0;
        for (int i : nb) s += y[i];
        return s / nb.length;
      }
      Map<Float, Integer> votes = new LinkedHashMap<>(); // insertion order = nearest first
      for (int i : nb) votes.merge(y[i], 1, Integer::sum);
      float best = y[nb[0]];
      int bestVotes = -1;
      for (Map.Entry<Float, Integer> e : votes.entrySet()) {
        if (e.getValue() > bestVotes) {
          best = e.getKey();
          bestVotes = e.getValue();
        }
      }
      return best;
    }
  }

  /** Predictions for {@code q}'s rows on {@code cpus} threads, with progress reports (rows done / total). */
  static double[] predict(Model m, double[][] q, int cpus, TaskEvents events, StopSignal stop) throws Exception {
    int n = q.length;
    double[] out = new double[n];
    long t0 = System.nanoTime();
    long lastReport = 0;
    ExecutorService pool = Executors.newFixedThreadPool(cpus, r -> {
      Thread t = new Thread(r, "knn-predict");
      t.setDaemon(true);
      return t;
    });
    try {
      int step = BATCH * cpus;
      for (int start = 0; start < n; start += step) {
        stop.check();
        List<Future<?>> fs = new ArrayList<>();
        int end = Math.min(n, start + step);
        for (int b = start; b < end; b += BATCH) {
          int from = b;
          int to = Math.min(end, b + BATCH);
          fs.add(pool.submit(() -> {
            for (int i = from; i < to; i++) out[i] = m.predict(q[i]);
          }));
        }
        for (Future<?> f : fs) f.get();
        long now = System.nanoTime();
        if (start == 0 || end == n || now - lastReport >= PROGRESS_INTERVAL_NANOS) {
          lastReport = now;
          double s = (now - t0) / 1e9;
          events.progress(Progress.newBuilder().setStep(end).setTotalSteps(n).setEpoch(1).setTotalEpochs(1)
              .setSamplesPerSec(s > 0 ? end / s : 0).setTimestampMs(System.currentTimeMillis()).build());
        }
      }
    } finally {
      pool.shutdownNow();
    }
    return out;
  }
}

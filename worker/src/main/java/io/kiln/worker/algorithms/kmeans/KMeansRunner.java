package io.kiln.worker.algorithms.kmeans;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.algorithms.data.TableFormat;
import io.kiln.worker.algorithms.knn.BuiltinSupport;
import io.kiln.worker.algorithms.knn.BuiltinSupport.Rows;
import io.kiln.worker.data.DataException;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

/**
 * The {@code kmeans} built-in: Lloyd's k-means on one worker, k-means++ (default) or random
 * initialisation (docs/algorithms.md). The model is the centroids ({@code centroids.f32} +
 * {@code kiln-model.json}); metrics are the final training inertia (sum of squared distances to
 * the nearest centroid) and, with a validation set, its inertia.
 */
public final class KMeansRunner implements TaskRunner {
  public static final String NAME = "kmeans";
  public static final String DESCRIPTOR = "kiln-model.json";
  public static final String CENTROIDS_FILE = "centroids.f32";
  public static final String FORMAT = "kiln-kmeans-v1";

  /** The checked hyperparameters. */
  public record Params(int k, boolean plusPlus, int maxIter, double tol, long seed, int maxRows, String contentType,
      Map<String, String> effective) {

    public static Params parse(Map<String, String> hp) {
      BuiltinSupport.Checker c = new BuiltinSupport.Checker(NAME, hp,
          Set.of("k", "init", "max_iter", "tol", "seed", "feature_dim"));
      Long k = c.integer("k", null, 1, 1_000_000);
      String init = c.choice("init", "kmeans++", "kmeans++", "random");
      Long maxIter = c.integer("max_iter", 100L, 1, 1_000_000);
      double tol = c.number("tol", 1e-4, 0, false);
      Long seed = c.integer("seed", 0L, Long.MIN_VALUE, Long.MAX_VALUE);
      c.integer("feature_dim", 0L, 1, Integer.MAX_VALUE);
      int maxRows = c.maxRows();
      c.done();
      Map<String, String> eff = new TreeMap<>(hp);
      eff.put("k", Long.toString(k));
      eff.put("init", init);
      eff.put("max_iter", Long.toString(maxIter));
      eff.put("tol", Double.toString(tol));
      eff.put("seed", Long.toString(seed));
      return new Params(k.intValue(), init.equals("kmeans++"), maxIter.intValue(), tol, seed, maxRows,
          c.contentType(), eff);
    }
  }

  /** Centroids, the training rows' assignments, the final inertia, iterations run and whether it converged. */
  public record Fit(double[][] centroids, int[] assignments, double inertia, int iterations, boolean converged) {}

  /** Called after each iteration with (iteration, inertia before the update, rows whose cluster changed). */
  public interface IterationListener {
    void iteration(int iteration, double inertia, int changed) throws Exception;
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
    Params p = Params.parse(spec.getHyperparametersMap());
    long t0 = System.nanoTime();
    BuiltinSupport.Data data = BuiltinSupport.loadForSingleWorker(ctx, NAME, p.contentType(), p.maxRows(), false);
    Rows train = data.train();
    if (p.k() > train.rows()) {
      throw new IllegalArgumentException("k " + p.k() + " is larger than the " + train.rows() + " training rows");
    }
    long maxSteps = spec.getStopping().getMaxSteps();
    int maxIter = maxSteps > 0 ? (int) Math.min(p.maxIter(), maxSteps) : p.maxIter();
    long tTrain = System.nanoTime();
    int rows = train.rows();
    Fit fit = fit(train.x(), p.k(), p.plusPlus(), maxIter, p.tol(), p.seed(), (it, inertia, changed) -> {
      stop.check();
      double s = (System.nanoTime() - tTrain) / 1e9;
      events.info(String.format(Locale.ROOT, "iteration %d/%d inertia %.6g, %d rows changed cluster", it, maxIter,
          inertia, changed));
      events.progress(Progress.newBuilder().setStep(it).setTotalSteps(p.maxIter()).setEpoch(1).setTotalEpochs(1)
          .setLoss(inertia).putMetrics("train_inertia", inertia).putMetrics("changed", changed)
          .setSamplesPerSec(s > 0 ? (double) rows * it / s : 0).setComputeMsPerStep(s * 1000 / it)
          .setTimestampMs(System.currentTimeMillis()).build());
    });
    double trainSeconds = (System.nanoTime() - tTrain) / 1e9;
    Map<String, Double> metrics = new LinkedHashMap<>();
    metrics.put("train_inertia", fit.inertia());
    metrics.put("train_mean_squared_distance", fit.inertia() / rows);
    Rows v = data.validation();
    if (v != null && v.rows() > 0) {
      double vi = 0;
      for (double[] q : v.x()) vi += nearest(fit.centroids(), q)[1];
      metrics.put("validation_inertia", vi);
      metrics.put("validation_mean_squared_distance", vi / v.rows());
      metrics.put("validation_rows", (double) v.rows());
    }
    metrics.put("iterations", (double) fit.iterations());
    metrics.put("converged", fit.converged() ? 1.0 : 0.0);
    metrics.put("k", (double) p.k());
    metrics.put("train_rows", (double) rows);
    metrics.put("features", (double) train.cols());
    metrics.put("train_seconds", trainSeconds);
    events.info(String.format(Locale.ROOT, "kmeans k=%d: %d iterations (%s), train_inertia %.6g%s", p.k(),
        fit.iterations(), fit.converged() ? "converged" : "max_iter reached", fit.inertia(),
        metrics.containsKey("validation_inertia")
            ? String.format(Locale.ROOT, ", validation_inertia %.6g", metrics.get("validation_inertia")) : ""));

    URI modelUri = ModelArtifacts.folder(ctx.modelUri());
    if (a.getRank() == 0) {
      stop.check();
      Map<String, Object> d = new LinkedHashMap<>();
      d.put("format", FORMAT);
      d.put("algorithm", NAME);
      d.put("k", p.k());
      d.put("num_features", train.cols());
      d.put("init", p.plusPlus() ? "kmeans++" : "random");
      d.put("iterations", fit.iterations());
      d.put("converged", fit.converged());
      d.put("centroids_file", CENTROIDS_FILE);
      d.put("centroids_layout", "little-endian float32: k x num_features (row-major)");
      Map<String, Object> input = new LinkedHashMap<>();
      input.put("content_type", data.format().contentType());
      input.put("missing", "0");
      input.put("label", data.format() == TableFormat.CSV ? "none: every CSV column is a feature"
          : "ignored");
      if (data.format() == TableFormat.IDX) input.put("preprocessing", "pixel / 255, row-major");
      d.put("input", input);
      d.put("hyperparameters", p.effective());
      d.put("metrics", new TreeMap<>(metrics));
      d.put("job_id", a.getJobId());
      d.put("task_id", a.getTaskId());
      d.put("created_at", Instant.now().toString());
      BuiltinSupport.write(modelUri, CENTROIDS_FILE, BuiltinSupport.float32(fit.centroids(), null), DESCRIPTOR, d);
      ModelArtifacts.writeMetrics(ArtifactStore.forRoot(ctx.jobUri()),
          ModelArtifacts.normalize(ctx.jobUri().resolve("metrics.json")), metrics);
      events.info("model written to " + modelUri);
    }
    return new Outcome(modelUri.toString(), metrics);
  }

  /** {index of the nearest centroid, its squared distance}. */
  static double[] nearest(double[][] centroids, double[] q) {
    int best = 0;
    double bd = Double.POSITIVE_INFINITY;
    for (int c = 0; c < centroids.length; c++) {
      double d = BuiltinSupport.l2sq(q, centroids[c]);
      if (d < bd) {
        bd = d;
        best = c;
      }
    }
    return new double[] {best, bd};
  }

  /**
   * k-means++ seeding: the first seed uniformly, each next one with probability proportional to the
   * squared distance to the nearest seed so far (so a row already chosen is never chosen again).
   * Returns the chosen row indices.
   */
  public static int[] plusPlusSeeds(double[][] x, int k, Random r) {
    int n = x.length;
    int[] seeds = new int[k];
    seeds[0] = r.nextInt(n);
    double[] d2 = new double[n];
    for (int i = 0; i < n; i++) d2[i] = BuiltinSupport.l2sq(x[i], x[seeds[0]]);
    for (int s = 1; s < k; s++) {
      double total = 0;
      for (double v : d2) total += v;
      if (!(total > 0)) {
        throw new IllegalArgumentException("k " + k + " is larger than the number of distinct training rows (" + s
            + ")");
      }
      double target = r.nextDouble() * total;
      int pick = -1;
      double acc = 0;
      for (int i = 0; i < n; i++) {
        if (d2[i] <= 0) continue;
        acc += d2[i];
        pick = i;
        if (acc > target) break;
      }
      seeds[s] = pick;
      for (int i = 0; i < n; i++) d2[i] = Math.min(d2[i], BuiltinSupport.l2sq(x[i], x[pick]));
    }
    return seeds;
  }

  /** k distinct row indices uniformly at random. */
  static int[] randomSeeds(int n, int k, Random r) {
    int[] idx = new int[n];
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 0; i < k; i++) {
      int j = i + r.nextInt(n - i);
      int t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
    }
    return Arrays.copyOf(idx, k);
  }

  /**
   * Lloyd's iterations: assign every row to its nearest centroid, move each centroid to its rows'
   * mean (an empty cluster takes the row farthest from its centroid). Stops when no row changes
   * cluster, when the inertia improved by less than {@code tol} relative to the previous iteration's,
   * or after {@code maxIter} iterations.
   */
  public static Fit fit(double[][] x, int k, boolean plusPlus, int maxIter, double tol, long seed,
      IterationListener listener) throws Exception {
    int n = x.length;
    if (k > n) throw new IllegalArgumentException("k " + k + " is larger than the " + n + " training rows");
    int dim = x[0].length;
    Random r = new Random(seed);
    int[] seeds = plusPlus ? plusPlusSeeds(x, k, r) : randomSeeds(n, k, r);
    double[][] c = new double[k][];
    for (int i = 0; i < k; i++) c[i] = x[seeds[i]].clone();
    int[] assign = new int[n];
    Arrays.fill(assign, -1);
    double[] dist = new double[n];
    double prev = Double.POSITIVE_INFINITY;
    int it = 0;
    boolean converged = false;
    while (it < maxIter) {
      it++;
      int changed = 0;
      double inertia = 0;
      for (int i = 0; i < n; i++) {
        double[] nd = nearest(c, x[i]);
        int a = (int) nd[0];
        if (a != assign[i]) changed++;
        assign[i] = a;
        dist[i] = nd[1];
        inertia += nd[1];
      }
      // update
      double[][] sum = new double[k][dim];
      int[] count = new int[k];
      for (int i = 0; i < n; i++) {
        count[assign[i]]++;
        double[] s = sum[assign[i]];
        for (int j = 0; j < dim; j++) s[j] += x[i][j];
      }
      for (int cl = 0; cl < k; cl++) {
        if (count[cl] > 0) {
          for (int j = 0; j < dim; j++) sum[cl][j] /= count[cl];
          c[cl] = sum[cl];
        } else {
          int far = 0;
          for (int i = 1; i < n; i++) if (dist[i] > dist[far]) far = i;
          c[cl] = x[far].clone();
          dist[far] = 0;
          changed++;
        }
      }
      if (listener != null) listener.iteration(it, inertia, changed);
      if (changed == 0 || (prev < Double.POSITIVE_INFINITY && prev - inertia <= tol * prev)) {
        converged = true;
        break;
      }
      prev = inertia;
    }
    // final assignment and inertia with the final centroids
    double inertia = 0;
    for (int i = 0; i < n; i++) {
      double[] nd = nearest(c, x[i]);
      assign[i] = (int) nd[0];
      inertia += nd[1];
    }
    return new Fit(c, assign, inertia, it, converged);
  }
}

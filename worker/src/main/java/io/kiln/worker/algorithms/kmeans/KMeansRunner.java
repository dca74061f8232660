package io.kiln.worker.algorithms.kmeans;

import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.worker.algorithms.data.TableFormat;
import io.kiln.worker.algorithms.group.RankGroup;
import io.kiln.worker.algorithms.knn.BuiltinSupport;
import io.kiln.worker.algorithms.knn.BuiltinSupport.Rows;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

/**
 * The {@code kmeans} built-in: Lloyd's k-means over the ranks' row shards ({@link RankGroup}),
 * k-means++ (default) or random initialisation on rank 0 (docs/algorithms.md). The model is the centroids ({@code centroids.f32} +
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
    JobSpec spec = ctx.assignment().getSpec();
    Params p = Params.parse(spec.getHyperparametersMap());
    BuiltinSupport.Data data = BuiltinSupport.loadAll(ctx, NAME, p.contentType(), p.maxRows(), false);
    Rows all = data.train();
    if (p.k() > all.rows()) {
      throw new IllegalArgumentException("k " + p.k() + " is larger than the " + all.rows() + " training rows");
    }
    long maxSteps = spec.getStopping().getMaxSteps();
    int maxIter = maxSteps > 0 ? (int) Math.min(p.maxIter(), maxSteps) : p.maxIter();
    try (RankGroup g = RankGroup.join(ctx)) {
      return train(ctx, p, data, maxIter, g);
    }
  }

  private Outcome train(Context ctx, Params p, BuiltinSupport.Data data, int maxIter, RankGroup g) throws Exception {
    TaskEvents events = ctx.events();
    StopSignal stop = ctx.stop();
    Rows train = data.train().shard(g.rank(), g.world());
    if (g.world() > 1) {
      events.info(String.format(Locale.ROOT, "rank %d of %d: %d of the %d training rows", g.rank(), g.world(),
          train.rows(), data.train().rows()));
    }
    long tTrain = System.nanoTime();
    int rows = data.train().rows();
    // seeding on rank 0 (which, like every rank, read all rows), the centroids broadcast to the others
    double[][] init = g.rank() == 0 ? seeds(data.train().x(), p.k(), p.plusPlus(), p.seed())
        : new double[p.k()][data.train().cols()];
    Fit fit = fit(train.x(), broadcast(init, g), maxIter, p.tol(), g, stop, (it, inertia, changed) -> {
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
    Rows v = data.validation() == null ? null : data.validation().shard(g.rank(), g.world());
    if (v != null && data.validation().rows() > 0) {
      double vi = 0;
      for (double[] q : v.x()) vi += nearest(fit.centroids(), q)[1];
      vi = g.sumDoubles(new double[] {vi})[0];
      metrics.put("validation_inertia", vi);
      metrics.put("validation_mean_squared_distance", vi / data.validation().rows());
      metrics.put("validation_rows", (double) data.validation().rows());
    }
    metrics.put("iterations", (double) fit.iterations());
    metrics.put("converged", fit.converged() ? 1.0 : 0.0);
    metrics.put("k", (double) p.k());
    metrics.put("train_rows", (double) rows);
    metrics.put("features", (double) data.train().cols());
    if (g.world() > 1) metrics.put("rank_train_rows", (double) train.rows());
    metrics.put("train_seconds", trainSeconds);
    events.info(String.format(Locale.ROOT, "kmeans k=%d: %d iterations (%s), train_inertia %.6g%s", p.k(),
        fit.iterations(), fit.converged() ? "converged" : "max_iter reached", fit.inertia(),
        metrics.containsKey("validation_inertia")
            ? String.format(Locale.ROOT, ", validation_inertia %.6g", metrics.get("validation_inertia")) : ""));

    URI modelUri = ModelArtifacts.folder(ctx.modelUri());
    if (g.rank() == 0) {
      stop.check();
      Map<String, Object> d = BuiltinSupport.descriptor(FORMAT, NAME);
      d.put("k", p.k());
      d.put("num_features", data.train().cols());
      d.put("init", p.plusPlus() ? "kmeans++" : "random");
      d.put("iterations", fit.iterations());
      d.put("converged", fit.converged());
      d.put("centroids_file", CENTROIDS_FILE);
      d.put("centroids_layout", "little-endian float32: k x num_features (row-major)");
      BuiltinSupport.writeModel(ctx, modelUri, Map.of(CENTROIDS_FILE, BuiltinSupport.float32(fit.centroids(), null)),
          d, data, data.format() == TableFormat.CSV ? "none: every CSV column is a feature" : "ignored",
          p.effective(), metrics);
    }
    return new Outcome(modelUri.toString(), metrics);
  }

  /** {index of the nearest centroid (the first on ties), its squared distance}. */
  public static double[] nearest(double[][] centroids, double[] q) {
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

  /** The k initial centroids: k-means++ or k distinct random rows. */
  static double[][] seeds(double[][] x, int k, boolean plusPlus, long seed) {
    Random r = new Random(seed);
    int[] seeds = plusPlus ? plusPlusSeeds(x, k, r) : randomSeeds(x.length, k, r);
    double[][] c = new double[k][];
    for (int i = 0; i < k; i++) c[i] = x[seeds[i]].clone();
    return c;
  }

  private static double[][] broadcast(double[][] c, RankGroup g) {
    int k = c.length;
    int dim = c[0].length;
    double[] flat = new double[k * dim];
    for (int i = 0; i < k; i++) System.arraycopy(c[i], 0, flat, i * dim, dim);
    flat = g.broadcast(flat, 0);
    double[][] out = new double[k][dim];
    for (int i = 0; i < k; i++) System.arraycopy(flat, i * dim, out[i], 0, dim);
    return out;
  }

  /** One rank's {@link #fit(double[][], double[][], int, double, RankGroup, StopSignal, IterationListener)}. */
  public static Fit fit(double[][] x, int k, boolean plusPlus, int maxIter, double tol, long seed,
      IterationListener listener) throws Exception {
    if (k > x.length) throw new IllegalArgumentException("k " + k + " is larger than the " + x.length + " training rows");
    return fit(x, seeds(x, k, plusPlus, seed), maxIter, tol, RankGroup.solo(), null, listener);
  }

  /**
   * Lloyd's iterations over the ranks' row shards {@code x}, from the centroids {@code c} (the same
   * on every rank): each rank assigns its rows to the nearest centroid and sums them per cluster;
   * the sums, counts, inertia, changed rows and stop flags are summed over the ranks (one exact
   * all-reduce per iteration), and every rank moves each centroid to its rows' mean. An empty
   * cluster takes the row farthest from its centroid over all ranks. Stops when no row changes
   * cluster, when the inertia improved by less than {@code tol} relative to the previous
   * iteration's, or after {@code maxIter} iterations. The returned assignments are this rank's.
   */
  public static Fit fit(double[][] x, double[][] c, int maxIter, double tol, RankGroup g, StopSignal stop,
      IterationListener listener) throws Exception {
    int n = x.length;
    int k = c.length;
    int dim = c[0].length;
    int[] assign = new int[n];
    Arrays.fill(assign, -1);
    double[] dist = new double[n];
    double prev = Double.POSITIVE_INFINITY;
    int it = 0;
    boolean converged = false;
    while (it < maxIter) {
      it++;
      double[] stats = new double[k * dim + k + 3]; // sums, counts, inertia, changed, stop flags
      for (int i = 0; i < n; i++) {
        double[] nd = nearest(c, x[i]);
        int a = (int) nd[0];
        if (a != assign[i]) stats[k * dim + k + 1]++;
        assign[i] = a;
        dist[i] = nd[1];
        stats[k * dim + k] += nd[1];
        stats[k * dim + a]++;
        int off = a * dim;
        for (int j = 0; j < dim; j++) stats[off + j] += x[i][j];
      }
      stats[k * dim + k + 2] = stop != null && stop.isStopped() ? 1 : 0;
      stats = g.sumDoubles(stats);
      if (stats[k * dim + k + 2] > 0) {
        if (stop != null) stop.check();
        throw new io.kiln.worker.training.TaskStoppedException("another rank of the job was stopped");
      }
      double inertia = stats[k * dim + k];
      int changed = (int) stats[k * dim + k + 1];
      for (int cl = 0; cl < k; cl++) {
        double count = stats[k * dim + cl];
        if (count > 0) {
          double[] m = new double[dim];
          for (int j = 0; j < dim; j++) m[j] = stats[cl * dim + j] / count;
          c[cl] = m;
        } else {
          c[cl] = farthest(x, dist, dim, g);
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
    inertia = g.sumDoubles(new double[] {inertia})[0];
    return new Fit(c, assign, inertia, it, converged);
  }

  /** The row farthest from its centroid over all ranks (ties: the lower rank, then the lower row); its distance becomes 0. */
  private static double[] farthest(double[][] x, double[] dist, int dim, RankGroup g) {
    int far = -1;
    for (int i = 0; i < x.length; i++) if (far < 0 || dist[i] > dist[far]) far = i;
    double[] mine = new double[dim + 1];
    mine[0] = far < 0 ? -1 : dist[far];
    if (far >= 0) System.arraycopy(x[far], 0, mine, 1, dim);
    double[][] all = g.gather(mine);
    int best = 0;
    for (int r = 1; r < all.length; r++) if (all[r][0] > all[best][0]) best = r;
    if (best == g.rank() && far >= 0) dist[far] = 0;
    return Arrays.copyOfRange(all[best], 1, dim + 1);
  }
}

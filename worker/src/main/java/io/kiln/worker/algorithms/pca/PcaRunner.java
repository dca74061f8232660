package io.kiln.worker.algorithms.pca;

import io.kiln.worker.algorithms.group.RankGroup;
import io.kiln.worker.algorithms.knn.BuiltinSupport;
import io.kiln.worker.algorithms.knn.BuiltinSupport.Rows;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The {@code pca} built-in (docs/algorithms.md#pca): principal components by an exact
 * eigendecomposition of the scatter matrix ({@code algorithm_mode} regular) or a randomized SVD
 * (randomized), over the row shards of all ranks ({@link PcaFit}). Writes {@code model.json} with
 * the mean, the components and their explained variance.
 */
public final class PcaRunner implements TaskRunner {
  public static final String NAME = "pca";
  public static final String FORMAT = "kiln-pca-v1";
  public static final String MODEL_FILE = "model.json";

  /** The checked hyperparameters. */
  public record Params(int k, boolean randomized, boolean subtractMean, int extra, int powerIterations, long seed,
      int maxRows, String contentType, Map<String, String> effective) {

    public static Params parse(Map<String, String> hp) {
      BuiltinSupport.Checker c = new BuiltinSupport.Checker(NAME, hp, Set.of("num_components", "algorithm_mode",
          "subtract_mean", "extra_components", "power_iterations", "seed", "feature_dim", "mini_batch_size"));
      Long k = c.integer("num_components", null, 1, 100_000);
      String mode = c.choice("algorithm_mode", "regular", "regular", "randomized");
      boolean subtract = c.bool("subtract_mean", true);
      Long extra = c.integer("extra_components", -1L, -1, 100_000);
      Long power = c.integer("power_iterations", 2L, 0, 100);
      Long seed = c.integer("seed", 0L, Long.MIN_VALUE, Long.MAX_VALUE);
      c.integer("feature_dim", 0L, 1, Integer.MAX_VALUE);
      c.integer("mini_batch_size", 0L, 1, Integer.MAX_VALUE);
      int maxRows = c.maxRows();
      c.done();
      // -1 (the default): max(10, num_components) oversampling columns
      int ex = extra == -1 ? (int) Math.max(10, k) : extra.intValue();
      Map<String, String> eff = new TreeMap<>(hp);
      eff.put("num_components", Long.toString(k));
      eff.put("algorithm_mode", mode);
      eff.put("subtract_mean", Boolean.toString(subtract));
      eff.put("extra_components", Integer.toString(ex));
      eff.put("power_iterations", Long.toString(power));
      eff.put("seed", Long.toString(seed));
      return new Params(k.intValue(), mode.equals("randomized"), subtract, ex, power.intValue(), seed, maxRows,
          c.contentType(), eff);
    }
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Outcome run(Context ctx) throws Exception {
    Params p = Params.parse(ctx.assignment().getSpec().getHyperparametersMap());
    int cpus = Math.max(1, ctx.assignment().getSpec().getResources().getCpusPerWorker());
    BuiltinSupport.Data data = BuiltinSupport.loadAll(ctx, NAME, p.contentType(), p.maxRows(), false);
    int d = data.train().cols();
    if (p.k() > d) {
      throw new IllegalArgumentException("num_components " + p.k() + " is larger than the " + d + " features");
    }
    if (p.k() > data.train().rows()) {
      throw new IllegalArgumentException("num_components " + p.k() + " is larger than the " + data.train().rows()
          + " training rows");
    }
    try (RankGroup g = RankGroup.join(ctx)) {
      Rows train = data.train().shard(g.rank(), g.world());
      Rows val = data.validation() == null ? null : data.validation().shard(g.rank(), g.world());
      ctx.stop().check();
      long t0 = System.nanoTime();
      PcaFit.Result r = PcaFit.fit(train.x(), d, p.k(), p.randomized(), p.subtractMean(), p.extra(),
          p.powerIterations(), p.seed(), cpus, g);
      double seconds = (System.nanoTime() - t0) / 1e9;
      Map<String, Double> metrics = new LinkedHashMap<>();
      double explained = 0;
      for (double v : r.explainedVariance()) explained += v;
      metrics.put("explained_variance_ratio", r.totalVariance() > 0 ? explained / r.totalVariance() : 0);
      metrics.put("train_reconstruction_error", g.sumDoubles(reconstruction(train.x(), r))[0] / r.rows());
      if (val != null) {
        double[] v = g.sumDoubles(new double[] {reconstruction(val.x(), r)[0], val.rows()});
        if (v[1] > 0) metrics.put("validation_reconstruction_error", v[0] / v[1]);
        metrics.put("validation_rows", v[1]);
      }
      metrics.put("num_components", (double) p.k());
      metrics.put("train_rows", (double) r.rows());
      metrics.put("features", (double) d);
      metrics.put("train_seconds", seconds);
      ctx.events().info(String.format(Locale.ROOT, "pca %s: %d components of %d features explain %.4f of the "
          + "variance (%d rows, %.2f s)", p.randomized() ? "randomized" : "regular", p.k(), d,
          metrics.get("explained_variance_ratio"), r.rows(), seconds));
      URI modelUri = ModelArtifacts.folder(ctx.modelUri());
      if (g.rank() == 0) {
        ctx.stop().check();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", FORMAT);
        m.put("num_features", d);
        m.put("num_components", p.k());
        m.put("subtract_mean", p.subtractMean());
        m.put("projection", "z = components . (x - mean)");
        m.put("mean", BuiltinSupport.list(r.mean()));
        m.put("components", BuiltinSupport.lists(r.components()));
        m.put("singular_values", BuiltinSupport.list(r.singularValues()));
        m.put("explained_variance", BuiltinSupport.list(r.explainedVariance()));
        double[] ratio = new double[p.k()];
        for (int c = 0; c < ratio.length; c++) ratio[c] = r.explainedVariance()[c] / r.totalVariance();
        m.put("explained_variance_ratio", BuiltinSupport.list(ratio));
        Map<String, Object> desc = BuiltinSupport.descriptor(FORMAT, NAME);
        desc.put("model_file", MODEL_FILE);
        desc.put("algorithm_mode", p.randomized() ? "randomized" : "regular");
        desc.put("num_features", d);
        desc.put("num_components", p.k());
        BuiltinSupport.writeModel(ctx, modelUri, Map.of(MODEL_FILE, BuiltinSupport.json(m)), desc, data,
            data.format() == io.kiln.worker.algorithms.data.TableFormat.CSV ? "none: every CSV column is a feature"
                : "ignored", p.effective(), metrics);
      }
      return new Outcome(modelUri.toString(), metrics);
    }
  }

  /** {sum over rows of the squared distance between a row and its projection on the components}. */
  static double[] reconstruction(double[][] x, PcaFit.Result r) {
    double s = 0;
    double[] mean = r.mean();
    for (double[] row : x) {
      double norm = 0;
      for (int j = 0; j < mean.length; j++) norm += (row[j] - mean[j]) * (row[j] - mean[j]);
      double proj = 0;
      for (double[] c : r.components()) {
        double z = 0;
        for (int j = 0; j < mean.length; j++) z += c[j] * (row[j] - mean[j]);
        proj += z * z;
      }
      s += Math.max(0, norm - proj);
    }
    return new double[] {s};
  }
}

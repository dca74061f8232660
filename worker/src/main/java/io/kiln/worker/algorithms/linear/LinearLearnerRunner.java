package io.kiln.worker.algorithms.linear;

import io.kiln.protocol.proto.Progress;
import io.kiln.worker.algorithms.group.RankGroup;
import io.kiln.worker.algorithms.knn.BuiltinSupport;
import io.kiln.worker.algorithms.knn.BuiltinSupport.Rows;
import io.kiln.worker.algorithms.linear.LinearParams.Type;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import io.kiln.worker.training.TaskStoppedException;
import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * The {@code linear-learner} built-in (docs/algorithms.md#linear-learner): a linear regressor,
 * binary (logistic) or multiclass (softmax) classifier fitted by mini-batch SGD with momentum or
 * Adam, L1 (proximal) and L2 ({@code wd}) regularisation, on standardised features. Data-parallel:
 * every rank keeps its shard of the rows, and each mini-batch's gradient is summed over the ranks
 * with Kiln's all-reduce, so all ranks apply the same update and hold the same weights.
 */
public final class LinearLearnerRunner implements TaskRunner {
  public static final String NAME = "linear-learner";
  public static final String FORMAT = "kiln-linear-learner-v1";
  public static final String MODEL_FORMAT = "kiln-linear-v1";
  public static final String MODEL_FILE = "model.json";
  private static final double EPS = 1e-8;

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Outcome run(Context ctx) throws Exception {
    LinearParams p = LinearParams.parse(ctx.assignment().getSpec().getHyperparametersMap());
    BuiltinSupport.Data data = BuiltinSupport.loadAll(ctx, NAME, p.contentType(), p.maxRows(), true);
    checkLabels(p, data.train());
    if (data.validation() != null) checkLabels(p, data.validation());
    try (RankGroup g = RankGroup.join(ctx)) {
      Rows train = data.train().shard(g.rank(), g.world());
      Rows val = data.validation() == null ? null : data.validation().shard(g.rank(), g.world());
      if (g.world() > 1) {
        ctx.events().info(String.format(Locale.ROOT, "rank %d of %d: %d of the %d training rows", g.rank(), g.world(),
            train.rows(), data.train().rows()));
      }
      Fit fit = fit(p, train, val, g, ctx.events(), ctx.stop(), ctx.assignment().getSpec().getStopping()
          .getMaxRuntimeSeconds());
      Map<String, Double> metrics = new LinkedHashMap<>();
      metrics.putAll(fit.model().metrics("train", g.sumDoubles(fit.model().evaluate(train.x(), train.y()))));
      if (val != null) {
        double[] vs = g.sumDoubles(fit.model().evaluate(val.x(), val.y()));
        metrics.putAll(fit.model().metrics("validation", vs));
        metrics.put("validation_rows", vs[0]);
      }
      metrics.put("epochs", (double) fit.epochs());
      metrics.put("best_epoch", (double) fit.bestEpoch());
      metrics.put("train_rows", (double) data.train().rows());
      metrics.put("features", (double) data.train().cols());
      metrics.put("train_seconds", fit.seconds());
      if (g.world() > 1) metrics.put("rank_train_rows", (double) train.rows());
      StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "linear-learner %s: %d epochs, best epoch %d",
          p.type().label, fit.epochs(), fit.bestEpoch()));
      metrics.forEach((k, v) -> {
        if (k.startsWith("train_") && !k.endsWith("rows") && !k.endsWith("seconds") || k.startsWith("validation_")
            && !k.endsWith("rows")) {
          line.append(String.format(Locale.ROOT, " %s %.6g", k, v));
        }
      });
      ctx.events().info(line.toString());
      URI modelUri = ModelArtifacts.folder(ctx.modelUri());
      if (g.rank() == 0) {
        ctx.stop().check();
        Map<String, Object> d = BuiltinSupport.descriptor(FORMAT, NAME);
        d.put("model_file", MODEL_FILE);
        d.put("model_format", MODEL_FORMAT);
        d.put("predictor_type", p.type().label);
        d.put("num_features", data.train().cols());
        d.put("num_outputs", p.outputs());
        d.put("normalization", Map.of("feature_mean", BuiltinSupport.list(fit.mean()), "feature_std",
            BuiltinSupport.list(fit.std()), "note", "already folded into model.json's weights and bias"));
        BuiltinSupport.writeModel(ctx, modelUri, Map.of(MODEL_FILE, BuiltinSupport.json(fit.model().toJson())), d,
            data, "first CSV column (" + p.type().label + ")", p.effective(), metrics);
      }
      return new Outcome(modelUri.toString(), metrics);
    }
  }

  /** Labels fit the predictor type: 0/1 (binary), integers 0..num_classes-1 (multiclass), finite (regressor). */
  static void checkLabels(LinearParams p, Rows t) {
    for (int i = 0; i < t.rows(); i++) {
      float l = t.y()[i];
      String need = null;
      if (!Float.isFinite(l)) need = "a finite number";
      else if (p.type() == Type.BINARY && l != 0 && l != 1) need = "labels 0 or 1";
      else if (p.type() == Type.MULTICLASS && (l != Math.rint(l) || l < 0 || l >= p.numClasses())) {
        need = "integer labels in 0.." + (p.numClasses() - 1) + " (num_classes " + p.numClasses() + ")";
      }
      if (need != null) {
        throw new IllegalArgumentException(t.source() + ": row " + (i + 1) + " has label " + l + ", but predictor_type "
            + p.type().label + " needs " + need);
      }
    }
  }

  /** The fitted model (on raw features and labels), the scaling used, epochs run and the best epoch. */
  public record Fit(LinearModel model, double[] mean, double[] std, int epochs, int bestEpoch, double seconds) {}

  /**
   * Mini-batch SGD / Adam over this rank's {@code train} shard; {@code val} (this rank's shard, may be
   * null) drives early stopping. Every rank must call it with the same parameters.
   */
  public static Fit fit(LinearParams p, Rows train, Rows val, RankGroup g, TaskEvents events, StopSignal stop,
      long maxRuntimeSeconds) {
    long t0 = System.nanoTime();
    int d = 0; // a rank's shard may be empty: the width is the widest rank's
    for (double[] w : g.gather(new double[] {train.cols()})) d = Math.max(d, (int) w[0]);
    // ---- standardisation statistics over all ranks' rows
    double[] st = new double[2 * d + 3];
    for (int i = 0; i < train.rows(); i++) {
      double[] x = train.x()[i];
      for (int j = 0; j < d; j++) {
        st[j] += x[j];
        st[d + j] += x[j] * x[j];
      }
      st[2 * d] += train.y()[i];
      st[2 * d + 1] += (double) train.y()[i] * train.y()[i];
      st[2 * d + 2]++;
    }
    st = g.sumDoubles(st);
    long n = (long) st[2 * d + 2];
    double[] mean = new double[d];
    double[] std = new double[d];
    for (int j = 0; j < d; j++) {
      mean[j] = p.normalizeData() ? st[j] / n : 0;
      double var = st[d + j] / n - (st[j] / n) * (st[j] / n);
      std[j] = p.normalizeData() && var > 1e-24 ? Math.sqrt(var) : 1;
    }
    double yMean = p.normalizeLabel() ? st[2 * d] / n : 0;
    double yVar = st[2 * d + 1] / n - yMean * yMean;
    double yStd = p.normalizeLabel() && yVar > 1e-24 ? Math.sqrt(yVar) : 1;
    double[][] xs = scale(train.x(), mean, std);
    float[] ys = scale(train.y(), yMean, yStd);
    double[][] vxs = val == null ? null : scale(val.x(), mean, std);
    float[] vys = val == null ? null : scale(val.y(), yMean, yStd);

    // ---- SGD
    int outputs = p.outputs();
    int params = outputs * d + outputs;
    LinearModel m = new LinearModel(p.type(), outputs, d);
    double[] grad = new double[params];
    float[] buf = new float[params + 3];
    double[] m1 = new double[params];
    double[] m2 = new double[params];
    double[] z = new double[outputs];
    int local = xs.length;
    int steps = (int) Math.max(1, (n + p.miniBatchSize() - 1) / p.miniBatchSize());
    int[] order = new int[local];
    for (int i = 0; i < local; i++) order[i] = i;
    Random rnd = new Random(p.seed() * 1_000_003L + g.rank());
    double lr = p.learningRate();
    long t = 0;
    LinearModel best = m.copy();
    double bestLoss = Double.POSITIVE_INFINITY;
    double ref = Double.POSITIVE_INFINITY;
    int bestEpoch = 0;
    int bad = 0;
    int epoch = 0;
    while (epoch < p.epochs()) {
      epoch++;
      for (int i = local - 1; i > 0; i--) {
        int j = rnd.nextInt(i + 1);
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
      }
      double epochLoss = 0;
      double epochCount = 0;
      for (int s = 0; s < steps; s++) {
        java.util.Arrays.fill(grad, 0);
        double loss = 0;
        int from = (int) ((long) s * local / steps);
        int to = (int) ((long) (s + 1) * local / steps);
        for (int i = from; i < to; i++) loss += m.accumulate(xs[order[i]], ys[order[i]], z, grad);
        for (int i = 0; i < params; i++) buf[i] = (float) grad[i];
        buf[params] = (float) loss;
        buf[params + 1] = to - from;
        buf[params + 2] = stop.isStopped() ? 1 : 0;
        g.sumFloats(buf); // the one all-reduce per step: gradient, loss, rows, stop flags
        if (buf[params + 2] > 0) stopped(stop);
        double count = buf[params + 1];
        if (count == 0) continue;
        t++;
        update(p, m, buf, count, m1, m2, lr, t);
        epochLoss += buf[params];
        epochCount += count;
        if (p.lrStep() > 0 && t % p.lrStep() == 0) lr = Math.max(p.lrMin(), lr * p.lrFactor());
      }
      double trainLoss = epochLoss / Math.max(1, epochCount);
      double valLoss = Double.NaN;
      if (vxs != null) {
        double[] vs = g.sumDoubles(m.evaluate(vxs, vys));
        if (vs[0] > 0) valLoss = vs[1] / vs[0];
      }
      double monitored = Double.isNaN(valLoss) ? trainLoss : valLoss;
      if (monitored < bestLoss) {
        bestLoss = monitored;
        best = m.copy();
        bestEpoch = epoch;
      }
      if (monitored < ref * (1 - p.tolerance()) || ref == Double.POSITIVE_INFINITY) {
        ref = monitored;
        bad = 0;
      } else {
        bad++;
      }
      double sec = (System.nanoTime() - t0) / 1e9;
      report(events, epoch, p.epochs(), t, trainLoss, valLoss, n, sec);
      boolean timeUp = maxRuntimeSeconds > 0 && sec >= maxRuntimeSeconds;
      if (g.any(timeUp)) {
        events.info("stopping.maxRuntimeSeconds " + maxRuntimeSeconds + " reached after epoch " + epoch);
        break;
      }
      if (bad >= p.patience()) {
        events.info("early stopping after epoch " + epoch + ": the " + (vxs != null ? "validation" : "training")
            + " loss has not improved by early_stopping_tolerance " + p.tolerance() + " for " + p.patience()
            + " epochs; keeping epoch " + bestEpoch);
        break;
      }
    }
    LinearModel raw = best.unscaled(mean, std, yMean, yStd);
    return new Fit(raw, mean, std, epoch, bestEpoch, (System.nanoTime() - t0) / 1e9);
  }

  /** One optimizer step from the summed gradient in {@code buf} (divided by {@code count}). */
  private static void update(LinearParams p, LinearModel m, float[] buf, double count, double[] m1, double[] m2,
      double lr, long t) {
    int d = m.dim;
    int weights = m.outputs * d;
    double c1 = 1 - Math.pow(p.beta1(), t);
    double c2 = 1 - Math.pow(p.beta2(), t);
    for (int i = 0; i < m1.length; i++) {
      boolean isWeight = i < weights;
      if (!isWeight && !p.useBias()) continue;
      double cur = isWeight ? m.w[i / d][i % d] : m.b[i - weights];
      double gi = buf[i] / count + (isWeight ? p.wd() * cur : 0);
      double step;
      if (p.adam()) {
        m1[i] = p.beta1() * m1[i] + (1 - p.beta1()) * gi;
        m2[i] = p.beta2() * m2[i] + (1 - p.beta2()) * gi * gi;
        step = lr * (m1[i] / c1) / (Math.sqrt(m2[i] / c2) + EPS);
      } else {
        m1[i] = p.momentum() * m1[i] + gi;
        step = lr * m1[i];
      }
      double next = cur - step;
      if (isWeight && p.l1() > 0) { // proximal step: soft-thresholding drives small weights to exactly 0
        double shrink = lr * p.l1();
        next = Math.signum(next) * Math.max(0, Math.abs(next) - shrink);
      }
      if (isWeight) m.w[i / d][i % d] = next;
      else m.b[i - weights] = next;
    }
  }

  private static void stopped(StopSignal stop) {
    if (stop.isStopped()) stop.check();
    throw new TaskStoppedException("another rank of the job was stopped");
  }

  private static void report(TaskEvents events, int epoch, int epochs, long step, double trainLoss, double valLoss,
      long rows, double sec) {
    events.info(String.format(Locale.ROOT, "epoch %d/%d train_objective_loss %.6g%s", epoch, epochs, trainLoss,
        Double.isNaN(valLoss) ? "" : String.format(Locale.ROOT, " validation_objective_loss %.6g", valLoss)));
    Progress.Builder pr = Progress.newBuilder().setStep(step).setEpoch(epoch).setTotalEpochs(epochs).setLoss(trainLoss)
        .putMetrics("train_objective_loss", trainLoss).setSamplesPerSec(sec > 0 ? rows * (double) epoch / sec : 0)
        .setTimestampMs(System.currentTimeMillis());
    if (!Double.isNaN(valLoss)) pr.putMetrics("validation_objective_loss", valLoss);
    events.progress(pr.build());
  }

  static double[][] scale(double[][] x, double[] mean, double[] std) {
    double[][] out = new double[x.length][];
    for (int i = 0; i < x.length; i++) {
      double[] r = new double[mean.length];
      for (int j = 0; j < r.length; j++) r[j] = (x[i][j] - mean[j]) / std[j];
      out[i] = r;
    }
    return out;
  }

  static float[] scale(float[] y, double mean, double std) {
    float[] out = new float[y.length];
    for (int i = 0; i < y.length; i++) out[i] = (float) ((y[i] - mean) / std);
    return out;
  }
}

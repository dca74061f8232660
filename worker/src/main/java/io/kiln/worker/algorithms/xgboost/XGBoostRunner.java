package io.kiln.worker.algorithms.xgboost;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.algorithms.data.Table;
import io.kiln.worker.algorithms.data.TableFormat;
import io.kiln.worker.algorithms.data.TableReader;
import io.kiln.worker.data.DataException;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import io.kiln.worker.training.TaskStoppedException;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import ml.dmlc.xgboost4j.java.Booster;
import ml.dmlc.xgboost4j.java.DMatrix;
import ml.dmlc.xgboost4j.java.XGBoost;
import ml.dmlc.xgboost4j.java.XGBoostError;

/**
 * The {@code xgboost} built-in algorithm: gradient-boosted trees with XGBoost4J, SageMaker's
 * hyperparameters and input formats (docs/algorithms.md).
 *
 * <p>Stages: check the hyperparameters ({@link XGBoostParams}) and load XGBoost's native library;
 * read the {@code train} channel and the optional {@code validation} channel (CSV, libsvm or IDX;
 * for IDX the t10k split is the validation set unless a validation channel is given); on more than
 * one rank, keep this rank's row shard and join the ranks into one XGBoost communicator
 * ({@link XGBoostGroup}); boost one round at a time ({@link Booster#update}), evaluating the train
 * and validation sets after each round, honouring stop requests, {@code stopping.max_steps} (rounds),
 * {@code stopping.max_runtime_seconds} and {@code early_stopping_rounds} between rounds; evaluate;
 * rank 0 writes {@code model.json} (XGBoost's JSON model), {@code kiln-model.json} (Kiln's
 * descriptor, written last) and {@code metrics.json}.
 */
public final class XGBoostRunner implements TaskRunner {
  public static final String NAME = "xgboost";
  /** Kiln's descriptor of an XGBoost model folder. */
  public static final String DESCRIPTOR = "kiln-model.json";
  /** XGBoost's own JSON model. */
  public static final String MODEL_FILE = "model.json";
  public static final String FORMAT = "kiln-xgboost-v1";
  /** At most one progress report per this interval (plus the first and the last round). */
  private static final long PROGRESS_INTERVAL_NANOS = 1_000_000_000L;
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping()
      .serializeSpecialFloatingPointValues().create();

  @Override
  public String name() {
    return NAME;
  }

  /** What was read: the splits, where they came from and what the labels mean. */
  record Data(Table train, Table validation, TableFormat format, Integer numClasses, List<String> classNames) {}

  @Override
  public Outcome run(Context ctx) throws Exception {
    TaskAssignment a = ctx.assignment();
    JobSpec spec = a.getSpec();
    TaskEvents events = ctx.events();
    StopSignal stop = ctx.stop();
    int rank = a.getRank();
    int world = Math.max(1, a.getWorldSize());
    int cpus = Math.max(1, spec.getResources().getCpusPerWorker());

    XGBoostParams params = XGBoostParams.parse(spec.getHyperparametersMap(), cpus);
    for (String channel : spec.getChannelsMap().keySet()) {
      if (!channel.equals("train") && !channel.equals("validation")) {
        events.warn("channel '" + channel + "' is not used by the xgboost algorithm (it reads train and validation)");
      }
    }
    XGBoostNative.ensureLoaded();

    // ---- data
    stop.check();
    long tLoad = System.nanoTime();
    Data data = load(spec, params, stop);
    String defaultObjective = data.format() == TableFormat.IDX ? XGBoostParams.DEFAULT_OBJECTIVE_IDX
        : XGBoostParams.DEFAULT_OBJECTIVE;
    params = params.resolve(defaultObjective, data.numClasses());
    checkLabels(params, data.train());
    if (data.validation() != null) checkLabels(params, data.validation());
    if (params.earlyStoppingRounds() > 0 && data.validation() == null) {
      throw new IllegalArgumentException("early_stopping_rounds needs a validation set: give a validation channel");
    }
    events.info(String.format(Locale.ROOT, "loaded %s: %d training rows x %d features%s in %.1f s (%s)",
        data.format().contentType(), data.train().rows(), data.train().cols(), data.validation() == null
            ? ", no validation set" : ", " + data.validation().rows() + " validation rows",
        (System.nanoTime() - tLoad) / 1e9, data.train().source()));
    Table train = data.train();
    if (world > 1) {
      train = train.shard(rank, world);
      events.info(String.format(Locale.ROOT, "rank %d of %d: %d of the %d training rows (rows i with i %% %d == %d)",
          rank, world, train.rows(), data.train().rows(), world, rank));
      if (train.rows() == 0) {
        throw new DataException("rank " + rank + " of " + world + " has no training rows (" + data.train().rows()
            + " rows for " + world + " ranks)");
      }
    }
    events.info("xgboost " + XGBoostNative.version() + ": objective " + params.objective()
        + (params.numClass() != null ? " num_class " + params.numClass() : "") + ", num_round " + params.numRound()
        + ", parameters " + params.xgboostParams());

    // ---- train
    XGBoostGroup group = null;
    try {
      if (world > 1) {
        stop.check();
        Config config = config();
        String host = config.hasPath("kiln.cluster.host") ? config.getString("kiln.cluster.host") : "127.0.0.1";
        Duration timeout = config.hasPath("kiln.worker.rendezvous-timeout")
            ? config.getDuration("kiln.worker.rendezvous-timeout") : Duration.ofSeconds(120);
        group = XGBoostGroup.join(ctx.rendezvous(), rank, world, host, timeout);
        events.info("rank " + rank + " of " + world + ": XGBoost communicator up");
      }
      Result r = train(params, train, data.validation(), a, events, stop, group);
      try {
        Map<String, Double> metrics = new LinkedHashMap<>(r.metrics());
        if (world > 1) {
          metrics.put("rank_train_rows", metrics.get("train_rows"));
          metrics.put("train_rows", (double) data.train().rows());
        }
        // ---- output
        if (rank == 0) {
          stop.check();
          URI modelUri = ModelArtifacts.folder(ctx.modelUri());
          writeModel(modelUri, r.booster(), params, data, metrics, r, a);
          ModelArtifacts.writeMetrics(ArtifactStore.forRoot(ctx.jobUri()),
              ModelArtifacts.normalize(ctx.jobUri().resolve("metrics.json")), metrics);
          events.info("model written to " + modelUri);
        }
        return new Outcome(ModelArtifacts.folder(ctx.modelUri()).toString(), metrics);
      } finally {
        r.booster().dispose();
      }
    } finally {
      if (group != null) group.close();
    }
  }

  // ------------------------------------------------------------------ data

  static Data load(JobSpec spec, XGBoostParams params, StopSignal stop) throws DataException {
    String trainUri = spec.getChannelsOrDefault("train", "");
    if (trainUri.isBlank()) throw new IllegalArgumentException("channels.train is required");
    String validationUri = spec.getChannelsOrDefault("validation", "");
    TableFormat format = params.contentType() != null ? TableFormat.fromContentType(params.contentType())
        : TableReader.detect("train", trainUri);
    TableReader.Options opts = new TableReader.Options(params.maxRows(), params.csvWeights(), stop);
    TableReader.Options all = new TableReader.Options(0, params.csvWeights(), stop);
    if (format == TableFormat.IDX) {
      TableReader.IdxChannels idx = TableReader.readIdxChannels(trainUri, validationUri, params.maxRows(), stop);
      Path dir = idx.trainDir();
      Table train = idx.train();
      Table validation = idx.validation();
      return new Data(train, validation, format, 10, MnistDataset.defaultClassNames(dir));
    }
    Table train = TableReader.read("train", trainUri, format, opts);
    stop.check();
    Table validation = null;
    if (!validationUri.isBlank()) {
      TableFormat vf = params.contentType() != null ? format : TableReader.detect("validation", validationUri);
      if (vf == TableFormat.IDX) {
        throw new DataException("channel 'validation' holds IDX files but channel 'train' is " + format.contentType());
      }
      validation = TableReader.read("validation", validationUri, vf, all);
      if (validation.isDense() && train.isDense() && validation.cols() != train.cols()) {
        throw new DataException("channel 'validation' (" + validation.source() + ") has " + validation.cols()
            + " features per row but channel 'train' (" + train.source() + ") has " + train.cols());
      }
      if (!validation.isDense() || !train.isDense()) {
        if (validation.isDense() != train.isDense()) {
          throw new DataException("channels 'train' and 'validation' must have the same format");
        }
        int cols = Math.max(train.cols(), validation.cols());
        train = train.withCols(cols);
        validation = validation.withCols(cols);
      }
    }
    return new Data(train, validation, format, null, null);
  }

  /** Labels must fit the objective; the message names the data and the first bad row (1-based). */
  static void checkLabels(XGBoostParams p, Table t) {
    String obj = p.objective();
    float[] y = t.labels();
    if (XGBoostParams.isMulti(obj)) {
      if (p.numClass() == null) {
        throw new IllegalArgumentException("num_class is required for objective " + obj
            + " (labels are 0 .. num_class-1)");
      }
      int k = p.numClass();
      for (int i = 0; i < y.length; i++) {
        if (y[i] < 0 || y[i] >= k || y[i] != Math.rint(y[i])) {
          throw new IllegalArgumentException(t.source() + ": row " + (i + 1) + " has label " + label(y[i])
              + ", but objective " + obj + " with num_class " + k + " needs integer labels 0.." + (k - 1));
        }
      }
    } else if (obj.startsWith("binary:") || obj.equals("reg:logistic")) {
      for (int i = 0; i < y.length; i++) {
        if (y[i] < 0 || y[i] > 1) {
          throw new IllegalArgumentException(t.source() + ": row " + (i + 1) + " has label " + label(y[i])
              + ", but objective " + obj + " needs labels in [0, 1]");
        }
      }
    } else if (obj.equals("count:poisson") || obj.equals("reg:tweedie") || obj.equals("reg:gamma")) {
      boolean strict = obj.equals("reg:gamma");
      for (int i = 0; i < y.length; i++) {
        if (strict ? !(y[i] > 0) : y[i] < 0) {
          throw new IllegalArgumentException(t.source() + ": row " + (i + 1) + " has label " + label(y[i])
              + ", but objective " + obj + " needs " + (strict ? "positive" : "non-negative") + " labels");
        }
      }
    }
  }

  private static String label(float v) {
    return v == Math.rint(v) && Math.abs(v) < 1e9 ? Long.toString((long) v) : Float.toString(v);
  }

  /** An XGBoost matrix of a table (dense: NaN = missing; sparse: CSR), with labels, weights and groups. */
  public static DMatrix toDMatrix(Table t) throws XGBoostError {
    DMatrix m;
    if (t.isDense()) {
      m = new DMatrix(t.denseValues(), t.rows(), t.cols(), Float.NaN);
    } else {
      m = new DMatrix(t.indptr(), t.indices(), t.values(), DMatrix.SparseType.CSR, t.cols());
    }
    m.setLabel(t.labels());
    if (t.weights() != null) m.setWeight(t.weights());
    if (t.groups() != null) m.setGroup(t.groups());
    return m;
  }

  // ------------------------------------------------------------------ training

  /** A trained booster and what training measured. */
  record Result(Booster booster, Map<String, Double> metrics, int rounds, Integer bestIteration, Double bestScore,
      String stoppedBy) {}

  private static Result train(XGBoostParams p, Table train, Table validation, TaskAssignment a, TaskEvents events,
      StopSignal stop, XGBoostGroup group) throws Exception {
    int total = p.numRound();
    long maxSteps = a.getSpec().getStopping().getMaxSteps();
    long maxRuntime = a.getSpec().getStopping().getMaxRuntimeSeconds();
    int rounds = maxSteps > 0 ? (int) Math.min(total, maxSteps) : total;
    long t0 = System.nanoTime();
    DMatrix dtrain = toDMatrix(train);
    DMatrix dval = validation == null ? null : toDMatrix(validation);
    try {
      Map<String, DMatrix> watches = new LinkedHashMap<>();
      watches.put("train", dtrain);
      if (dval != null) watches.put("validation", dval);
      DMatrix[] evalMats = watches.values().toArray(new DMatrix[0]);
      String[] evalNames = watches.keySet().toArray(new String[0]);
      Booster booster;
      try {
        // zero rounds: a booster whose prediction caches cover the train and validation matrices
        booster = XGBoost.train(dtrain, p.xgboostParams(), 0, watches, null, null);
        for (String m : p.evalMetrics()) booster.setParam("eval_metric", m);
      } catch (XGBoostError e) {
        throw new IllegalArgumentException("XGBoost rejected the parameters: " + xgboostMessage(e));
      }
      boolean ok = false;
      try {
        String esMetric = null;
        boolean maximize = false;
        double best = Double.NaN;
        int bestRound = -1;
        Map<String, Double> last = Map.of();
        String stoppedBy = null;
        long lastReport = 0;
        int done = 0;
        double loadedSeconds = (System.nanoTime() - t0) / 1e9;
        for (int round = 0; round < rounds; round++) {
          // between rounds: stop requests and the runtime limit, decided together on all ranks
          boolean stopNow = stop.isStopped();
          boolean timeUp = maxRuntime > 0 && System.nanoTime() - t0 >= maxRuntime * 1_000_000_000L;
          if (group != null) {
            float[] flags = XGBoostGroup.max(new float[] {stopNow ? 1 : 0, timeUp ? 1 : 0});
            if (flags[0] > 0 && !stopNow) throw new TaskStoppedException("another rank of the job was stopped");
            timeUp = flags[1] > 0;
          }
          stop.check();
          if (timeUp) {
            stoppedBy = "max_runtime_seconds";
            break;
          }
          try {
            booster.update(dtrain, round);
          } catch (XGBoostError e) {
            if (round == 0) throw new IllegalArgumentException("XGBoost rejected the job: " + xgboostMessage(e));
            throw new IllegalStateException("XGBoost failed in round " + (round + 1) + ": " + xgboostMessage(e));
          }
          String ev;
          try {
            ev = booster.evalSet(evalMats, evalNames, round);
          } catch (XGBoostError e) {
            throw new IllegalArgumentException("XGBoost cannot evaluate: " + xgboostMessage(e));
          }
          last = parseEval(ev);
          done = round + 1;
          if (p.earlyStoppingRounds() > 0) {
            if (esMetric == null) {
              esMetric = lastValidationMetric(last);
              maximize = maximize(esMetric);
            }
            Double v = last.get(esMetric);
            if (v != null && (bestRound < 0 || (maximize ? v > best : v < best))) {
              best = v;
              bestRound = round;
            }
          }
          long now = System.nanoTime();
          boolean lastRound = done == rounds;
          boolean early = p.earlyStoppingRounds() > 0 && round - bestRound >= p.earlyStoppingRounds();
          String line = roundLine(done, total, last);
          events.info(line);
          if (round == 0 || lastRound || early || now - lastReport >= PROGRESS_INTERVAL_NANOS) {
            lastReport = now;
            double seconds = (now - t0) / 1e9;
            Progress.Builder pr = Progress.newBuilder().setStep(done).setTotalSteps(total).setEpoch(1)
                .setTotalEpochs(1).setSamplesPerSec(seconds > 0 ? (double) train.rows() * done / seconds : 0)
                .setComputeMsPerStep(seconds * 1000 / done).setTimestampMs(System.currentTimeMillis());
            Double loss = firstTrainMetric(last);
            if (loss != null) pr.setLoss(loss);
            last.forEach((k, v) -> pr.putMetrics(k, v));
            events.progress(pr.build());
          }
          if (early) {
            stoppedBy = "early_stopping_rounds";
            events.info(String.format(Locale.ROOT, "early stopping after round %d: %s has not improved for %d rounds "
                + "(best %s at round %d)", done, esMetric, p.earlyStoppingRounds(), fmt(best), bestRound + 1));
            break;
          }
        }
        double trainSeconds = (System.nanoTime() - t0) / 1e9;
        if (stoppedBy != null && !stoppedBy.equals("early_stopping_rounds")) {
          events.info("training ended early after " + done + " of " + total + " rounds: " + stoppedBy);
        }
        if (bestRound >= 0) {
          booster.setAttr("best_iteration", Integer.toString(bestRound));
          booster.setAttr("best_score", Double.toString(best));
        }

        // ---- evaluation (on every rank: the train accuracy / RMSE is summed over the shards)
        stop.check();
        Map<String, Double> metrics = new LinkedHashMap<>();
        String obj = p.objective();
        if (XGBoostParams.isClassification(obj) || XGBoostParams.isRegression(obj)) {
          boolean cls = XGBoostParams.isClassification(obj);
          double[] tr = score(booster, dtrain, train.labels(), obj);
          if (group != null) {
            float[] s = XGBoostGroup.sum(new float[] {(float) tr[0], (float) tr[1]});
            tr = new double[] {s[0], s[1]};
          }
          metrics.put(cls ? "train_accuracy" : "train_rmse", cls ? tr[0] / tr[1] : Math.sqrt(tr[0] / tr[1]));
          if (dval != null) {
            double[] va = score(booster, dval, validation.labels(), obj);
            metrics.put(cls ? "validation_accuracy" : "validation_rmse",
                cls ? va[0] / va[1] : Math.sqrt(va[0] / va[1]));
          }
        }
        metrics.putAll(last);
        metrics.put("rounds", (double) done);
        metrics.put("train_seconds", trainSeconds);
        metrics.put("seconds_per_round", done > 0 ? (trainSeconds - loadedSeconds) / done : 0);
        metrics.put("train_rows", (double) train.rows());
        if (validation != null) metrics.put("validation_rows", (double) validation.rows());
        metrics.put("features", (double) train.cols());
        if (bestRound >= 0) {
          metrics.put("best_iteration", (double) bestRound);
          metrics.put("best_" + esMetric, best);
        }
        StringBuilder summary = new StringBuilder(String.format(Locale.ROOT, "trained %d rounds in %.2f s", done,
            trainSeconds));
        for (String k : List.of("train_accuracy", "validation_accuracy", "train_rmse", "validation_rmse")) {
          if (metrics.containsKey(k)) summary.append(String.format(Locale.ROOT, "; %s %.4f", k, metrics.get(k)));
        }
        events.info(summary.toString());
        ok = true;
        return new Result(booster, metrics, done, bestRound >= 0 ? bestRound : null, bestRound >= 0 ? best : null,
            stoppedBy);
      } finally {
        if (!ok) booster.dispose();
      }
    } finally {
      dtrain.dispose();
      if (dval != null) dval.dispose();
    }
  }

  /**
   * {correct, count} for classification or {sum of squared errors, count} for regression, with the
   * booster's predictions on {@code m}.
   */
  static double[] score(Booster b, DMatrix m, float[] labels, String objective) throws XGBoostError {
    float[][] pred = b.predict(m);
    double a = 0;
    for (int i = 0; i < labels.length; i++) {
      float[] row = pred[i];
      if (XGBoostParams.isClassification(objective)) {
        double cls;
        if (objective.equals("multi:softprob")) {
          int arg = 0;
          for (int k = 1; k < row.length; k++) if (row[k] > row[arg]) arg = k;
          cls = arg;
        } else if (objective.equals("multi:softmax") || objective.equals("binary:hinge")) {
          cls = row[0];
        } else if (objective.equals("binary:logitraw")) {
          cls = row[0] > 0 ? 1 : 0;
        } else {
          cls = row[0] > 0.5f ? 1 : 0;
        }
        double truth = XGBoostParams.isMulti(objective) ? labels[i] : (labels[i] > 0.5f ? 1 : 0);
        if (cls == truth) a += 1;
      } else {
        double d = row[0] - labels[i];
        a += d * d;
      }
    }
    return new double[] {a, labels.length};
  }

  /** "[3]\ttrain-mlogloss:0.41\tvalidation-merror:0.13" to {train_mlogloss: 0.41, validation_merror: 0.13}. */
  static Map<String, Double> parseEval(String ev) {
    Map<String, Double> m = new LinkedHashMap<>();
    String[] parts = ev.trim().split("\t");
    for (int i = 1; i < parts.length; i++) {
      String part = parts[i];
      int colon = part.lastIndexOf(':');
      int dash = part.indexOf('-');
      if (colon < 0 || dash < 0 || dash > colon) continue;
      try {
        m.put(part.substring(0, dash) + "_" + part.substring(dash + 1, colon),
            Double.parseDouble(part.substring(colon + 1)));
      } catch (NumberFormatException e) {
        // a metric XGBoost could not compute (e.g. "nan"); left out
      }
    }
    return m;
  }

  private static String roundLine(int done, int total, Map<String, Double> metrics) {
    StringBuilder b = new StringBuilder("round ").append(done).append('/').append(total);
    metrics.forEach((k, v) -> {
      int us = k.indexOf('_');
      b.append(' ').append(k, 0, us).append('-').append(k.substring(us + 1)).append(' ').append(fmt(v));
    });
    return b.toString();
  }

  private static String fmt(double v) {
    return String.format(Locale.ROOT, "%.4f", v);
  }

  private static Double firstTrainMetric(Map<String, Double> m) {
    for (Map.Entry<String, Double> e : m.entrySet()) if (e.getKey().startsWith("train_")) return e.getValue();
    return null;
  }

  /** XGBoost's early-stopping metric: the last metric of the validation set. */
  private static String lastValidationMetric(Map<String, Double> m) {
    String found = null;
    for (String k : m.keySet()) if (k.startsWith("validation_")) found = k;
    if (found == null) throw new IllegalStateException("no validation metric to stop early on");
    return found;
  }

  static boolean maximize(String metricKey) {
    String name = metricKey.substring(metricKey.indexOf('_') + 1);
    return name.startsWith("auc") || name.startsWith("map") || name.startsWith("ndcg") || name.startsWith("pre")
        || name.startsWith("accuracy");
  }

  /**
   * The first line of an XGBoost error (its native stack trace dropped), without the
   * "[hh:mm:ss] file:line: " prefix. Exceptions built from it carry no cause: the task's failure
   * reason is the innermost cause's message, which would bring the stack trace back.
   */
  static String xgboostMessage(Throwable e) {
    String m = e.getMessage() == null ? e.toString() : e.getMessage();
    String first = m.split("\n", 2)[0].trim();
    first = first.replaceFirst("^\\[\\d\\d:\\d\\d:\\d\\d\\]\\s*", "").replaceFirst("^\\S+\\.(cc|h|cu):\\d+:\\s*", "");
    return first.isEmpty() ? m : first;
  }

  // ------------------------------------------------------------------ output

  private static void writeModel(URI modelUri, Booster booster, XGBoostParams p, Data data, Map<String, Double> metrics,
      Result r, TaskAssignment a) throws Exception {
    ArtifactStore store = ArtifactStore.forRoot(modelUri);
    ByteArrayOutputStream model = new ByteArrayOutputStream(1 << 20);
    booster.saveModel(model, "json");
    store.put(modelUri.resolve(MODEL_FILE), model.toByteArray());
    Map<String, Object> d = new LinkedHashMap<>();
    d.put("format", FORMAT);
    d.put("algorithm", NAME);
    d.put("engine", "XGBoost");
    d.put("xgboost_version", XGBoostNative.version());
    d.put("model_file", MODEL_FILE);
    d.put("model_format", "json");
    d.put("objective", p.objective());
    d.put("num_class", p.numClass());
    d.put("num_features", data.train().cols());
    d.put("num_rounds", r.rounds());
    if (r.bestIteration() != null) {
      d.put("best_iteration", r.bestIteration());
      d.put("best_score", r.bestScore());
    }
    if (r.stoppedBy() != null) d.put("stopped_by", r.stoppedBy());
    Map<String, Object> input = new LinkedHashMap<>();
    input.put("content_type", data.format().contentType());
    input.put("missing", data.train().isDense() ? "NaN (empty CSV field)" : "absent index");
    if (data.format() == TableFormat.IDX) {
      input.put("preprocessing", "pixel / 255, row-major");
      input.put("class_names", data.classNames());
    }
    d.put("input", input);
    d.put("hyperparameters", p.effective());
    d.put("metrics", new TreeMap<>(metrics));
    d.put("job_id", a.getJobId());
    d.put("task_id", a.getTaskId());
    d.put("created_at", Instant.now().toString());
    store.put(modelUri.resolve(DESCRIPTOR), (GSON.toJson(d) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  private static Config config() {
    try {
      return ConfigFactory.load();
    } catch (RuntimeException e) {
      return ConfigFactory.empty();
    }
  }
}

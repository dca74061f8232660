package io.kiln.worker.algorithms.xgboost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.StoppingCondition;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.TestData;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.task.TaskRunners;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import ml.dmlc.xgboost4j.java.Booster;
import ml.dmlc.xgboost4j.java.DMatrix;
import ml.dmlc.xgboost4j.java.XGBoost;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The xgboost built-in, end to end through {@link TrainingTask} (real XGBoost, small data). */
class XGBoostRunnerTest {
  @TempDir Path tmp;

  // ------------------------------------------------------------------ helpers

  static JobSpec.Builder spec(Map<String, String> channels, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm("xgboost").putAllChannels(channels)
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    return spec;
  }

  static TaskAssignment assignment(JobSpec.Builder spec, Path jobDir, int rank, int world) {
    return TaskAssignment.newBuilder().setJobId("job-x").setTaskId("job-x-r" + rank).setRank(rank)
        .setWorldSize(world).setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
  }

  static List<TaskReport> run(TaskAssignment a, StopSignal stop, Consumer<TaskReport> also) {
    List<TaskReport> reports = new CopyOnWriteArrayList<>();
    new TrainingTask(a, new TaskEvents(a.getJobId(), a.getTaskId(), "w-test", r -> {
      reports.add(r);
      also.accept(r);
    }), stop, GradientSyncFactory.SINGLE_RANK_ONLY, URI.create("file:/nonexistent/")).run();
    return reports;
  }

  static List<TaskReport> run(TaskAssignment a) {
    return run(a, new StopSignal(), r -> {});
  }

  static TaskReport last(List<TaskReport> reports) {
    return reports.get(reports.size() - 1);
  }

  static Map<String, Double> completed(List<TaskReport> reports) {
    TaskReport last = last(reports);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(), () -> failure(reports));
    return last.getCompleted().getMetricsMap();
  }

  static String failure(List<TaskReport> reports) {
    TaskReport last = last(reports);
    return last.getKindCase() == TaskReport.KindCase.FAILED ? last.getFailed().getReason() : last.toString();
  }

  static String failedReason(List<TaskReport> reports) {
    TaskReport last = last(reports);
    assertEquals(TaskReport.KindCase.FAILED, last.getKindCase(), last::toString);
    return last.getFailed().getReason();
  }

  static List<String> logs(List<TaskReport> reports) {
    return reports.stream().filter(TaskReport::hasLogs).flatMap(r -> r.getLogs().getLinesList().stream())
        .map(l -> l.getMessage()).collect(Collectors.toList());
  }

  /** y = 3 x0 - 2 x1 + 0.5 x2 + 1 + noise(0.05), x uniform in [0, 1). */
  static void writeLinearCsv(Path file, int rows, long seed) throws Exception {
    Random r = new Random(seed);
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < rows; i++) {
      double x0 = r.nextDouble();
      double x1 = r.nextDouble();
      double x2 = r.nextDouble();
      double y = 3 * x0 - 2 * x1 + 0.5 * x2 + 1 + 0.05 * r.nextGaussian();
      b.append(String.format(Locale.ROOT, "%.5f,%.5f,%.5f,%.5f%n", y, x0, x1, x2));
    }
    Files.createDirectories(file.getParent());
    Files.writeString(file, b.toString());
  }

  /** Label 1 when x0 + x1 > 1, libsvm with 1-based indices (feature 3 only sometimes present). */
  static void writeBinaryLibsvm(Path file, int rows, long seed) throws Exception {
    Random r = new Random(seed);
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < rows; i++) {
      double x0 = r.nextDouble();
      double x1 = r.nextDouble();
      b.append(x0 + x1 > 1 ? 1 : 0).append(String.format(Locale.ROOT, " 1:%.4f 2:%.4f", x0, x1));
      if (i % 3 == 0) b.append(String.format(Locale.ROOT, " 3:%.4f", r.nextDouble()));
      b.append('\n');
    }
    Files.createDirectories(file.getParent());
    Files.writeString(file, b.toString());
  }

  // ------------------------------------------------------------------ tests

  @Test
  void foundThroughTheServiceLoader() {
    TaskRunner r = TaskRunners.find("xgboost").orElseThrow();
    assertInstanceOf(XGBoostRunner.class, r);
    assertEquals("xgboost", r.name());
  }

  @Test
  void csvRegressionOnALinearFunction() throws Exception {
    writeLinearCsv(tmp.resolve("data/train/part-1.csv"), 1500, 1);
    writeLinearCsv(tmp.resolve("data/validation/v.csv"), 500, 2);
    Path jobDir = tmp.resolve("jobs/job-x");
    List<TaskReport> reports = run(assignment(spec(Map.of("train", tmp.resolve("data/train").toString(),
        "validation", "file:" + tmp.resolve("data/validation")), "num_round", "80", "max_depth", "4", "eta", "0.2"),
        jobDir, 0, 1));
    Map<String, Double> m = completed(reports);
    // y spans about [-1, 4.5] with std about 1.1: the trees should get within a few tenths
    assertTrue(m.get("validation_rmse") < 0.2, () -> "validation rmse " + m);
    assertTrue(m.get("train_rmse") < 0.2, () -> "train rmse " + m);
    assertEquals(80.0, m.get("rounds"));
    assertTrue(m.containsKey("validation_rmse") && m.containsKey("train_rmse"));
    assertEquals(m.get("validation_rmse"), m.get("validation_rmse"), 1e-9);
    assertTrue(logs(reports).stream().anyMatch(l -> l.startsWith("round 80/80 train-rmse ")
        && l.contains(" validation-rmse ")), () -> logs(reports).toString());
    List<TaskReport> progress = reports.stream().filter(TaskReport::hasProgress).collect(Collectors.toList());
    assertFalse(progress.isEmpty());
    TaskReport lastProgress = progress.get(progress.size() - 1);
    assertEquals(80, lastProgress.getProgress().getStep());
    assertEquals(80, lastProgress.getProgress().getTotalSteps());
    assertTrue(lastProgress.getProgress().getMetricsMap().containsKey("validation_rmse"));

    Path modelDir = jobDir.resolve("model");
    assertEquals(modelDir.toUri().toString(), last(reports).getCompleted().getModelUri());
    JsonObject d = JsonParser.parseString(Files.readString(modelDir.resolve("kiln-model.json"))).getAsJsonObject();
    assertEquals("xgboost", d.get("algorithm").getAsString());
    assertEquals("reg:squarederror", d.get("objective").getAsString());
    assertEquals(3, d.get("num_features").getAsInt());
    assertEquals("80", d.getAsJsonObject("hyperparameters").get("num_round").getAsString());
    assertEquals("hist", d.getAsJsonObject("hyperparameters").get("tree_method").getAsString());
    assertEquals("text/csv", d.getAsJsonObject("input").get("content_type").getAsString());
    assertTrue(d.getAsJsonObject("metrics").has("validation_rmse"));
    JsonObject metricsJson = JsonParser.parseString(Files.readString(jobDir.resolve("metrics.json"))).getAsJsonObject();
    assertEquals(m.get("validation_rmse"), metricsJson.get("validation_rmse").getAsDouble(), 1e-12);

    // XGBoost's JSON model loads back and predicts the function
    Booster b = XGBoost.loadModel(modelDir.resolve("model.json").toString());
    DMatrix x = new DMatrix(new float[] {0.5f, 0.5f, 0.5f}, 1, 3, Float.NaN);
    float y = b.predict(x)[0][0];
    assertEquals(3 * 0.5 - 2 * 0.5 + 0.25 + 1, y, 0.25);
    x.dispose();
    b.dispose();
  }

  @Test
  void binaryClassificationFromLibsvmWithEarlyStopping() throws Exception {
    writeBinaryLibsvm(tmp.resolve("train.libsvm"), 1500, 3);
    writeBinaryLibsvm(tmp.resolve("val.libsvm"), 500, 4);
    List<TaskReport> reports = run(assignment(spec(Map.of("train", tmp.resolve("train.libsvm").toString(),
        "validation", tmp.resolve("val.libsvm").toString()), "objective", "binary:logistic", "num_round", "300",
        "eval_metric", "logloss,error", "early_stopping_rounds", "5", "eta", "0.5"), tmp.resolve("job"), 0, 1));
    Map<String, Double> m = completed(reports);
    assertTrue(m.get("validation_accuracy") > 0.93, () -> m.toString());
    assertTrue(m.get("train_accuracy") > 0.93, () -> m.toString());
    assertTrue(m.containsKey("validation_logloss") && m.containsKey("validation_error"), m::toString);
    // the validation error is 1 - accuracy of the same model
    assertEquals(1 - m.get("validation_accuracy"), m.get("validation_error"), 1e-6);
    assertTrue(m.get("rounds") < 300, () -> "early stopping did not stop: " + m);
    assertNotNull(m.get("best_iteration"));
    assertTrue(m.containsKey("best_validation_error"));
    assertTrue(logs(reports).stream().anyMatch(l -> l.startsWith("early stopping after round")));
  }

  @Test
  void multiclassOnFashionMnistIdx() throws Exception {
    Path jobDir = tmp.resolve("job");
    List<TaskReport> reports = run(assignment(spec(Map.of("train", TestData.fashionSmall().toString()),
        "objective", "multi:softprob", "num_class", "10", "num_round", "10", "max_depth", "4", "eta", "0.4",
        "eval_metric", "mlogloss,merror", "max_rows", "1500"), jobDir, 0, 1));
    Map<String, Double> m = completed(reports);
    // 1,500 training images, 10 rounds of depth-4 trees: about 0.8 on the 1,000 test images
    assertTrue(m.get("validation_accuracy") > 0.72, () -> m.toString());
    assertEquals(1500.0, m.get("train_rows"));
    assertEquals(1000.0, m.get("validation_rows"));
    assertEquals(784.0, m.get("features"));
    assertEquals(1 - m.get("validation_accuracy"), m.get("validation_merror"), 1e-6);
    assertTrue(logs(reports).stream().anyMatch(l -> l.matches("round 10/10 train-mlogloss [0-9.]+ train-merror [0-9.]+ "
        + "validation-mlogloss [0-9.]+ validation-merror [0-9.]+")), () -> logs(reports).toString());
    JsonObject d = JsonParser.parseString(Files.readString(jobDir.resolve("model/kiln-model.json"))).getAsJsonObject();
    assertEquals(10, d.get("num_class").getAsInt());
    assertEquals("application/x-idx", d.getAsJsonObject("input").get("content_type").getAsString());
    assertEquals("T-shirt/top", d.getAsJsonObject("input").getAsJsonArray("class_names").get(0).getAsString());
    assertTrue(Files.size(jobDir.resolve("model/model.json")) > 10_000);
  }

  @Test
  void malformedCsvRowNamesFileAndLine() throws Exception {
    Path f = tmp.resolve("data/train.csv");
    Files.createDirectories(f.getParent());
    Files.writeString(f, "1,0.5,0.25\n0,0.1,0.2\n\n1,0.3\n");
    String reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "num_round", "5"), tmp, 0, 1)));
    assertEquals("xgboost failed: " + f + ":4: 2 columns, but the first row (train.csv line 1) has 3", reason);

    Files.writeString(f, "1,0.5,0.25\n0,abc,0.2\n");
    reason = failedReason(run(assignment(spec(Map.of("train", f.toString())), tmp, 0, 1)));
    assertEquals("xgboost failed: " + f + ":2: column 2: 'abc' is not a number", reason);

    Files.writeString(f, "label,a,b\n1,0.5,0.25\n");
    reason = failedReason(run(assignment(spec(Map.of("train", f.toString())), tmp, 0, 1)));
    assertTrue(reason.startsWith("xgboost failed: " + f + ":1: the label (first column) 'label' is not a number"),
        reason);

    Files.writeString(f, "\n\n");
    reason = failedReason(run(assignment(spec(Map.of("train", f.toString())), tmp, 0, 1)));
    assertEquals("xgboost failed: channel 'train': no data rows in " + f, reason);

    Files.writeString(f, "3,0.5\n1,0.25\n");
    reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "objective", "binary:logistic"), tmp,
        0, 1)));
    assertEquals("xgboost failed: " + f + ": row 1 has label 3, but objective binary:logistic needs labels in [0, 1]",
        reason);
  }

  @Test
  void unknownAndOutOfRangeHyperparametersFailAtTheStart() throws Exception {
    Path f = tmp.resolve("train.csv");
    Files.writeString(f, "1,0.5\n0,0.1\n");
    String reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "num_round", "5", "max_dept",
        "3", "learning_rat", "0.1", "content_type", "text/csv", "max_rows", "10"), tmp, 0, 1)));
    assertTrue(reason.startsWith("xgboost failed: unknown hyperparameters learning_rat, max_dept (the xgboost "
        + "algorithm takes: "), reason);
    assertTrue(reason.contains("max_depth") && reason.contains("eta"), reason);

    reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "eta", "1.5", "subsample", "0",
        "num_round", "ten", "objective", "multi:softmaxx"), tmp, 0, 1)));
    assertTrue(reason.contains("eta 1.5 is out of range: must be in [0, 1]"), reason);
    assertTrue(reason.contains("subsample 0 is out of range: must be in (0, 1]"), reason);
    assertTrue(reason.contains("num_round 'ten' is not an integer"), reason);
    assertTrue(reason.contains("objective 'multi:softmaxx' is not one of "), reason);

    reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "objective", "multi:softmax"), tmp, 0,
        1)));
    assertEquals("xgboost failed: num_class is required for objective multi:softmax (labels are 0 .. num_class-1)",
        reason);

    // what only XGBoost itself knows: its first line, without the stack trace
    reason = failedReason(run(assignment(spec(Map.of("train", f.toString()), "eval_metric", "bogus"), tmp, 0, 1)));
    assertEquals("xgboost failed: XGBoost rejected the job: Unknown metric function bogus", reason);
  }

  @Test
  void stopRequestStopsBetweenRounds() throws Exception {
    writeLinearCsv(tmp.resolve("train.csv"), 300, 5);
    StopSignal stop = new StopSignal();
    // the first progress report (after round 1) asks for the stop; round 2 must not run
    List<TaskReport> reports = run(assignment(spec(Map.of("train", tmp.resolve("train.csv").toString()),
        "num_round", "500"), tmp.resolve("job"), 0, 1), stop, r -> {
          if (r.hasProgress()) stop.stop("by test");
        });
    assertEquals("stopped: by test", failedReason(reports));
    List<String> logs = logs(reports);
    assertTrue(logs.stream().anyMatch(l -> l.startsWith("round 1/500 ")), logs::toString);
    assertFalse(logs.stream().anyMatch(l -> l.startsWith("round 2/500 ")), logs::toString);
    assertFalse(Files.exists(tmp.resolve("job/model/kiln-model.json")));
  }

  @Test
  void maxStepsCapsTheRounds() throws Exception {
    writeLinearCsv(tmp.resolve("train.csv"), 300, 6);
    JobSpec.Builder s = spec(Map.of("train", tmp.resolve("train.csv").toString()), "num_round", "50")
        .setStopping(StoppingCondition.newBuilder().setMaxSteps(7));
    Map<String, Double> m = completed(run(assignment(s, tmp.resolve("job"), 0, 1)));
    assertEquals(7.0, m.get("rounds"));
    JsonObject d = JsonParser.parseString(Files.readString(tmp.resolve("job/model/kiln-model.json"))).getAsJsonObject();
    assertEquals(7, d.get("num_rounds").getAsInt());
  }

  @Test
  void twoRanksInOneJvmMatchOneRank() throws Exception {
    writeBinaryLibsvm(tmp.resolve("train.libsvm"), 2000, 7);
    writeBinaryLibsvm(tmp.resolve("val.libsvm"), 500, 8);
    Map<String, String> channels = Map.of("train", tmp.resolve("train.libsvm").toString(), "validation",
        tmp.resolve("val.libsvm").toString());
    String[] hp = {"objective", "binary:logistic", "num_round", "20", "max_depth", "3", "eval_metric", "error"};
    Map<String, Double> single = completed(run(assignment(spec(channels, hp), tmp.resolve("one"), 0, 1)));

    // two ranks as threads, with a stand-in for the coordinator's rendezvous
    List<List<TaskReport>> reports = io.kiln.worker.algorithms.BuiltinHarness.runRanks(2, "xgboost", channels,
        tmp.resolve("two"), hp);
    for (List<TaskReport> rank : reports) {
      assertTrue(rank.stream().anyMatch(r -> r.hasRendezvous() && r.getRendezvous().getBackend().equals("xgboost")));
    }
    Map<String, Double> rank0 = completed(reports.get(0));
    Map<String, Double> rank1 = completed(reports.get(1));
    assertEquals(2000.0, rank0.get("train_rows"));
    assertEquals(1000.0, rank0.get("rank_train_rows"));
    assertEquals(1000.0, rank1.get("rank_train_rows"));
    // metrics are all-reduced: both ranks see the same numbers
    assertEquals(rank0.get("validation_error"), rank1.get("validation_error"), 1e-9);
    assertEquals(rank0.get("train_accuracy"), rank1.get("train_accuracy"), 1e-9);
    // same data, split in two: the histograms' cut points differ a little, the accuracy hardly
    assertEquals(single.get("validation_accuracy"), rank0.get("validation_accuracy"), 0.02,
        () -> single + " vs " + rank0);
    assertTrue(Files.exists(tmp.resolve("two/model/kiln-model.json")));
  }

  @Test
  void missingLibgompIsExplained() {
    String m = XGBoostNative.describe(new UnsatisfiedLinkError("libgomp.so.1: cannot open shared object file"), null);
    assertTrue(m.contains("apt-get install libgomp1"), m);
    assertTrue(m.contains("libgomp.so.1: cannot open shared object file"), m);
    assertNotNull(XGBoostNative.findLibgomp(), "libgomp1 is installed on the build machine");
  }
}

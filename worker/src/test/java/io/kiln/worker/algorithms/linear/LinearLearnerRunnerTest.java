package io.kiln.worker.algorithms.linear;

import static io.kiln.worker.algorithms.BuiltinHarness.assertContains;
import static io.kiln.worker.algorithms.BuiltinHarness.completed;
import static io.kiln.worker.algorithms.BuiltinHarness.csv;
import static io.kiln.worker.algorithms.BuiltinHarness.failed;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.worker.algorithms.BuiltinHarness;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.commons.math3.stat.regression.OLSMultipleLinearRegression;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** linear-learner: closed-form least squares, classifiers, data-parallel ranks, bad input. */
class LinearLearnerRunnerTest {
  static final String ALG = LinearLearnerRunner.NAME;
  @TempDir Path tmp;

  /** Features of different scales and offsets (float32-exact, as the reader keeps them). */
  static double[][] features(int n, int d, Random r) {
    double[][] x = new double[n][d];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < d; j++) x[i][j] = (float) ((j + 1) * 3 * r.nextGaussian() + 5 * j);
    }
    return x;
  }

  static double[] regressionLabels(double[][] x, double[] w, double b, double noise, Random r) {
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double s = b;
      for (int j = 0; j < w.length; j++) s += w[j] * x[i][j];
      y[i] = (float) (s + noise * r.nextGaussian());
    }
    return y;
  }

  /** [bias, w...] of model.json. */
  static double[] coefficients(Path job) throws Exception {
    JsonObject m = JsonParser.parseString(Files.readString(job.resolve("model/model.json"))).getAsJsonObject();
    JsonArray w = m.getAsJsonArray("weights").get(0).getAsJsonArray();
    double[] c = new double[w.size() + 1];
    c[0] = m.getAsJsonArray("bias").get(0).getAsDouble();
    for (int j = 0; j < w.size(); j++) c[j + 1] = w.get(j).getAsDouble();
    return c;
  }

  static final String[] FULL_BATCH_GD = {"predictor_type", "regressor", "optimizer", "sgd", "momentum", "0.9",
      "learning_rate", "0.05", "mini_batch_size", "100000", "epochs", "400", "early_stopping_tolerance", "0",
      "early_stopping_patience", "1000"};

  @Test
  void regressionMatchesTheClosedFormLeastSquaresSolution() throws Exception {
    Random r = new Random(1);
    double[][] x = features(400, 4, r);
    double[] y = regressionLabels(x, new double[] {1.5, -2, 0.25, 3}, 7, 0.5, r);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), y, x).toString());
    Map<String, Double> m = completed(BuiltinHarness.run(ALG, ch, tmp.resolve("job"), FULL_BATCH_GD));

    OLSMultipleLinearRegression ols = new OLSMultipleLinearRegression();
    ols.newSampleData(y, x);
    double[] beta = ols.estimateRegressionParameters(); // intercept first
    double[] got = coefficients(tmp.resolve("job"));
    for (int j = 0; j < beta.length; j++) assertEquals(beta[j], got[j], 1e-4, "coefficient " + j);
    double olsMse = ols.calculateResidualSumOfSquares() / y.length;
    assertEquals(olsMse, m.get("train_mse"), 1e-6 * olsMse + 1e-9);
    assertEquals(400.0, m.get("train_rows"));
  }

  @Test
  void miniBatchAdamGetsCloseAndL1ZeroesAnIrrelevantFeature() throws Exception {
    Random r = new Random(2);
    double[][] x = features(2000, 3, r);
    double[] y = regressionLabels(x, new double[] {2, 0, -1}, 1, 0.1, r);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), y, x).toString());
    completed(BuiltinHarness.run(ALG, ch, tmp.resolve("a"), "predictor_type", "regressor", "mini_batch_size", "50",
        "epochs", "30", "learning_rate", "0.01", "lr_scheduler_step", "200", "lr_scheduler_factor", "0.5"));
    double[] c = coefficients(tmp.resolve("a"));
    assertEquals(2, c[1], 0.02);
    assertEquals(-1, c[3], 0.02);
    assertEquals(1, c[0], 0.1);
    completed(BuiltinHarness.run(ALG, ch, tmp.resolve("l1"), "predictor_type", "regressor", "optimizer", "sgd",
        "learning_rate", "0.1", "mini_batch_size", "2000", "epochs", "100", "l1", "0.05", "normalize_label", "false"));
    assertEquals(0.0, coefficients(tmp.resolve("l1"))[2], 0.0, "the irrelevant feature's weight is exactly 0");
  }

  @Test
  void binaryAndMulticlassClassifiers() throws Exception {
    Random r = new Random(3);
    int n = 600;
    double[][] x = new double[n][2];
    double[] y2 = new double[n];
    double[] y3 = new double[n];
    for (int i = 0; i < n; i++) {
      int c = i % 3;
      x[i][0] = (float) (4 * Math.cos(2 * Math.PI * c / 3) + r.nextGaussian());
      x[i][1] = (float) (4 * Math.sin(2 * Math.PI * c / 3) + r.nextGaussian());
      y3[i] = c;
      y2[i] = c == 0 ? 1 : 0;
    }
    Map<String, String> b = Map.of("train", csv(tmp.resolve("b/train.csv"), y2, x).toString(), "validation",
        csv(tmp.resolve("b/val.csv"), y2, x).toString());
    Map<String, Double> mb = completed(BuiltinHarness.run(ALG, b, tmp.resolve("jb"), "predictor_type",
        "binary_classifier", "mini_batch_size", "32", "epochs", "10"));
    assertTrue(mb.get("validation_accuracy") > 0.95, mb::toString);
    assertTrue(mb.get("train_objective_loss") < 0.3, mb::toString);
    Map<String, String> mc = Map.of("train", csv(tmp.resolve("m/train.csv"), y3, x).toString(), "validation",
        csv(tmp.resolve("m/val.csv"), y3, x).toString());
    Map<String, Double> mm = completed(BuiltinHarness.run(ALG, mc, tmp.resolve("jm"), "predictor_type",
        "multiclass_classifier", "num_classes", "3", "mini_batch_size", "32", "epochs", "10"));
    assertTrue(mm.get("validation_accuracy") > 0.95, mm::toString);
    JsonObject model = JsonParser.parseString(Files.readString(tmp.resolve("jm/model/model.json"))).getAsJsonObject();
    assertEquals("softmax", model.get("link").getAsString());
    assertEquals(3, model.getAsJsonArray("weights").size());
    JsonObject d = JsonParser.parseString(Files.readString(tmp.resolve("jm/model/kiln-model.json"))).getAsJsonObject();
    assertEquals("kiln-linear-learner-v1", d.get("format").getAsString());
  }

  @Test
  void twoRanksComputeTheOneRankModel() throws Exception {
    Random r = new Random(4);
    double[][] x = features(301, 3, r);
    double[] y = regressionLabels(x, new double[] {1, 2, 3}, -4, 0.3, r);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), y, x).toString());
    Map<String, Double> one = completed(BuiltinHarness.run(ALG, ch, tmp.resolve("one"), FULL_BATCH_GD));
    List<List<io.kiln.protocol.proto.TaskReport>> two = BuiltinHarness.runRanks(2, ALG, ch, tmp.resolve("two"),
        FULL_BATCH_GD);
    Map<String, Double> r0 = completed(two.get(0));
    Map<String, Double> r1 = completed(two.get(1));
    assertEquals(151.0, r0.get("rank_train_rows"));
    assertEquals(150.0, r1.get("rank_train_rows"));
    assertEquals(r0.get("train_mse"), r1.get("train_mse"), 0.0, "all-reduced metrics agree");
    assertEquals(one.get("train_mse"), r0.get("train_mse"), 1e-6 * one.get("train_mse"));
    double[] a = coefficients(tmp.resolve("one"));
    double[] b = coefficients(tmp.resolve("two"));
    for (int j = 0; j < a.length; j++) assertEquals(a[j], b[j], 1e-4, "coefficient " + j);
  }

  @Test
  void badInputIsReportedClearly() throws Exception {
    Files.createDirectories(tmp.resolve("d"));
    Files.writeString(tmp.resolve("d/ok.csv"), "1,2,3\n0,4,5\n2,1,1\n");
    Map<String, String> ok = Map.of("train", tmp.resolve("d/ok.csv").toString());
    assertContains(failed(BuiltinHarness.run(ALG, ok, tmp.resolve("j1"), "predictor_type", "ranker", "epoch", "3",
        "learning_rate", "-1", "mini_batch_size", "0")), "predictor_type 'ranker' is not one of",
        "unknown hyperparameter epoch", "learning_rate -1 is out of range", "mini_batch_size 0 is out of range");
    assertContains(failed(BuiltinHarness.run(ALG, ok, tmp.resolve("j2"), "predictor_type", "multiclass_classifier")),
        "num_classes is required");
    assertContains(failed(BuiltinHarness.run(ALG, ok, tmp.resolve("j3"), "predictor_type", "binary_classifier")),
        "ok.csv: row 3 has label 2.0, but predictor_type binary_classifier needs labels 0 or 1");
    Files.writeString(tmp.resolve("d/bad.csv"), "1,2,3\n0,x,5\n");
    assertContains(failed(BuiltinHarness.run(ALG, Map.of("train", tmp.resolve("d/bad.csv").toString()),
        tmp.resolve("j4"), "predictor_type", "regressor")), "bad.csv:2", "'x' is not a number");
    Files.writeString(tmp.resolve("d/label.csv"), "yes,2,3\n");
    assertContains(failed(BuiltinHarness.run(ALG, Map.of("train", tmp.resolve("d/label.csv").toString()),
        tmp.resolve("j5"), "predictor_type", "regressor")), "label.csv:1", "the label (first column) 'yes'");
    Files.writeString(tmp.resolve("d/empty.csv"), "");
    assertContains(failed(BuiltinHarness.run(ALG, Map.of("train", tmp.resolve("d/empty.csv").toString()),
        tmp.resolve("j6"), "predictor_type", "regressor")), "no data rows");
  }

  @Test
  void aStopRequestEndsTrainingAtTheNextStep() {
    Random r = new Random(5);
    double[][] x = features(100, 2, r);
    double[] y = regressionLabels(x, new double[] {1, 1}, 0, 0.1, r);
    float[] fy = new float[y.length];
    for (int i = 0; i < y.length; i++) fy[i] = (float) y[i];
    io.kiln.worker.training.StopSignal stop = new io.kiln.worker.training.StopSignal();
    stop.stop("stopped by the test");
    io.kiln.worker.task.TaskEvents events = new io.kiln.worker.task.TaskEvents("j", "t", "w", rep -> { });
    LinearParams p = LinearParams.parse(Map.of("predictor_type", "regressor"));
    io.kiln.worker.training.TaskStoppedException e = org.junit.jupiter.api.Assertions.assertThrows(
        io.kiln.worker.training.TaskStoppedException.class, () -> LinearLearnerRunner.fit(p,
            new io.kiln.worker.algorithms.knn.BuiltinSupport.Rows("mem", x, fy), null,
            io.kiln.worker.algorithms.group.RankGroup.solo(), events, stop, 0));
    assertTrue(e.getMessage().contains("stopped by the test"), e.getMessage());
  }
}

package io.kiln.worker.algorithms.knn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.TestData;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The knn built-in: against a plain brute-force computation, end to end through {@link TrainingTask}. */
class KnnRunnerTest {
  @TempDir Path tmp;

  static TaskAssignment assignment(Map<String, String> channels, Path jobDir, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm("knn").putAllChannels(channels)
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(2));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    return TaskAssignment.newBuilder().setJobId("job-x").setTaskId("job-x-r0").setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
  }

  static List<TaskReport> run(TaskAssignment a) {
    List<TaskReport> reports = new CopyOnWriteArrayList<>();
    new TrainingTask(a, new TaskEvents(a.getJobId(), a.getTaskId(), "w-test", reports::add), new StopSignal(),
        GradientSyncFactory.SINGLE_RANK_ONLY, URI.create("file:/nonexistent/")).run();
    return reports;
  }

  static Map<String, Double> completed(List<TaskReport> reports) {
    TaskReport last = reports.get(reports.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(),
        () -> last.hasFailed() ? last.getFailed().getReason() : last.toString());
    return last.getCompleted().getMetricsMap();
  }

  static String failed(List<TaskReport> reports) {
    TaskReport last = reports.get(reports.size() - 1);
    assertEquals(TaskReport.KindCase.FAILED, last.getKindCase(), last::toString);
    return last.getFailed().getReason();
  }

  /** Three noisy classes in 4 dimensions (label, features...) written as CSV; returns the rows. */
  static double[][] writeClusters(Path file, int rows, long seed, boolean regression) throws Exception {
    Random r = new Random(seed);
    double[][] out = new double[rows][];
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < rows; i++) {
      double[] row = new double[5];
      if (regression) {
        for (int j = 1; j < 5; j++) row[j] = r.nextDouble();
        row[0] = 2 * row[1] - row[2] + 0.5 * row[3] + 0.01 * r.nextGaussian();
      } else {
        int c = r.nextInt(3);
        row[0] = c;
        for (int j = 1; j < 5; j++) row[j] = (j - 1 == c ? 1.0 : 0.0) + 0.6 * r.nextGaussian();
      }
      for (int j = 0; j < 5; j++) b.append(j > 0 ? "," : "").append(String.format(Locale.ROOT, "%.4f", row[j]));
      b.append('\n');
      out[i] = row;
      for (int j = 0; j < 5; j++) row[j] = Double.parseDouble(String.format(Locale.ROOT, "%.4f", row[j]));
    }
    Files.createDirectories(file.getParent());
    Files.writeString(file, b.toString());
    return out;
  }

  /** Brute force, written out plainly: sort all rows by (distance, index), take k, vote or average. */
  static double bruteForce(double[][] train, double[] q, int k, boolean classifier, boolean cosine) {
    List<double[]> all = new ArrayList<>(); // {distance, index}
    for (int i = 0; i < train.length; i++) {
      double d;
      if (cosine) {
        double dot = 0, na = 0, nb = 0;
        for (int j = 1; j < q.length; j++) {
          dot += q[j] * train[i][j];
          na += q[j] * q[j];
          nb += train[i][j] * train[i][j];
        }
        d = 1 - dot / (Math.sqrt(na) * Math.sqrt(nb));
      } else {
        d = 0;
        for (int j = 1; j < q.length; j++) d += (q[j] - train[i][j]) * (q[j] - train[i][j]);
      }
      all.add(new double[] {d, i});
    }
    all.sort(Comparator.<double[]>comparingDouble(a -> a[0]).thenComparingDouble(a -> a[1]));
    if (!classifier) {
      double s = 0;
      for (int n = 0; n < k; n++) s += train[(int) all.get(n)[1]][0];
      return s / k;
    }
    int[] votes = new int[3];
    for (int n = 0; n < k; n++) votes[(int) train[(int) all.get(n)[1]][0]]++;
    int max = 0;
    for (int v : votes) max = Math.max(max, v);
    for (int n = 0; n < k; n++) { // the tied class whose member is nearest
      int c = (int) train[(int) all.get(n)[1]][0];
      if (votes[c] == max) return c;
    }
    throw new AssertionError();
  }

  static double[][] features(double[][] rows) {
    double[][] x = new double[rows.length][];
    for (int i = 0; i < rows.length; i++) x[i] = java.util.Arrays.copyOfRange(rows[i], 1, rows[i].length);
    return x;
  }

  static float[] labels(double[][] rows) {
    float[] y = new float[rows.length];
    for (int i = 0; i < rows.length; i++) y[i] = (float) rows[i][0];
    return y;
  }

  @Test
  void samePredictionsAsBruteForce() throws Exception {
    double[][] train = writeClusters(tmp.resolve("a/train.csv"), 300, 1, false);
    double[][] val = writeClusters(tmp.resolve("a/val.csv"), 100, 2, false);
    for (boolean cosine : new boolean[] {false, true}) {
      for (int k : new int[] {1, 4, 7}) {
        KnnRunner.Model m = new KnnRunner.Model(features(train), labels(train), k, true, cosine);
        int correct = 0;
        for (double[] q : val) {
          double expect = bruteForce(train, q, k, true, cosine);
          double got = m.predict(java.util.Arrays.copyOfRange(q, 1, q.length));
          assertEquals(expect, got, "k " + k + " cosine " + cosine);
          if (got == q[0]) correct++;
        }
        if (k == 7 && !cosine) {
          Map<String, Double> metrics = completed(run(assignment(Map.of("train", tmp.resolve("a/train.csv").toString(),
              "validation", tmp.resolve("a/val.csv").toString()), tmp.resolve("job"), "k", "7",
              "predictor_type", "classifier")));
          assertEquals(correct / 100.0, metrics.get("validation_accuracy"), 1e-9);
          assertEquals(100.0, metrics.get("validation_rows"));
        }
      }
    }
    double[][] rtrain = writeClusters(tmp.resolve("r/train.csv"), 200, 3, true);
    double[][] rval = writeClusters(tmp.resolve("r/val.csv"), 50, 4, true);
    KnnRunner.Model m = new KnnRunner.Model(features(rtrain), labels(rtrain), 5, false, false);
    for (double[] q : rval) {
      assertEquals(bruteForce(rtrain, q, 5, false, false), m.predict(java.util.Arrays.copyOfRange(q, 1, q.length)),
          1e-5);
    }
  }

  @Test
  void regressorOnALinearSet() throws Exception {
    writeClusters(tmp.resolve("r/train.csv"), 2000, 5, true);
    writeClusters(tmp.resolve("r/val.csv"), 200, 6, true);
    List<TaskReport> reports = run(assignment(Map.of("train", tmp.resolve("r/train.csv").toString(),
        "validation", tmp.resolve("r/val.csv").toString()), tmp.resolve("job"), "k", "5",
        "predictor_type", "regressor"));
    Map<String, Double> metrics = completed(reports);
    // the label's standard deviation is about 0.65; a 5-NN mean in 3 informative dimensions does far better
    assertTrue(metrics.get("validation_rmse") < 0.2, metrics::toString);
    assertTrue(Files.exists(tmp.resolve("job/model/data.f32")));
  }

  @Test
  void fashionMnistClassifier() throws Exception {
    Path job = tmp.resolve("job");
    List<TaskReport> reports = run(assignment(Map.of("train", TestData.fashionSmall().toString()), job,
        "k", "5", "predictor_type", "classifier", "sample_size", "2000"));
    Map<String, Double> metrics = completed(reports);
    assertTrue(metrics.get("validation_accuracy") > 0.7, metrics::toString);
    assertEquals(2000.0, metrics.get("train_rows"));
    assertTrue(reports.stream().anyMatch(r -> r.hasProgress() && r.getProgress().getStep() == r.getProgress()
        .getTotalSteps() && r.getProgress().getTotalSteps() == metrics.get("validation_rows")));
    JsonObject d = JsonParser.parseString(Files.readString(job.resolve("model/kiln-model.json"))).getAsJsonObject();
    assertEquals("knn", d.get("algorithm").getAsString());
    assertEquals(5, d.get("k").getAsInt());
    assertEquals("classifier", d.get("predictor_type").getAsString());
    assertEquals(784, d.get("num_features").getAsInt());
    assertEquals(10, d.getAsJsonArray("classes").size());
    assertEquals(4L * 2000 * 785, Files.size(job.resolve("model/data.f32")));
    assertTrue(Files.exists(job.resolve("metrics.json")));
  }

  @Test
  void badHyperparameters() throws Exception {
    writeClusters(tmp.resolve("a/train.csv"), 20, 1, false);
    Map<String, String> ch = Map.of("train", tmp.resolve("a/train.csv").toString());
    String r = failed(run(assignment(ch, tmp.resolve("j1"), "predictor_type", "classifier", "kk", "3")));
    assertTrue(r.contains("unknown hyperparameter kk"), r);
    assertTrue(r.contains("k is required"), r);
    r = failed(run(assignment(ch, tmp.resolve("j2"), "k", "0", "predictor_type", "ranker", "distance", "l1",
        "index_type", "faiss.IVFPQ", "faiss_index_ivf_nlist", "0")));
    assertTrue(r.contains("k 0 is out of range"), r);
    assertTrue(r.contains("predictor_type 'ranker'"), r);
    assertTrue(r.contains("distance 'l1'"), r);
    assertTrue(r.contains("index_type 'faiss.IVFPQ' is not available"), r);
    assertTrue(r.contains("faiss_index_ivf_nlist 0 is out of range"), r);
    r = failed(run(assignment(ch, tmp.resolve("j3"), "k", "1025", "predictor_type", "classifier")));
    assertTrue(r.contains("k 1025 is out of range"), r);
    r = failed(run(assignment(ch, tmp.resolve("j4"), "k", "21", "predictor_type", "classifier")));
    assertTrue(r.contains("k 21 is larger than the 20 training rows"), r);
    r = failed(run(assignment(ch, tmp.resolve("j5"), "k", "abc", "predictor_type", "classifier")));
    assertTrue(r.contains("k 'abc' is not an integer"), r);
  }

  /** {@code rows} points around 40 random centres in 16 dimensions. */
  static double[][] blobs(int rows, long seed) {
    Random r = new Random(seed);
    double[][] centres = new double[40][16];
    for (double[] c : centres) for (int j = 0; j < 16; j++) c[j] = 10 * r.nextGaussian();
    double[][] x = new double[rows][16];
    for (int i = 0; i < rows; i++) {
      double[] c = centres[r.nextInt(40)];
      for (int j = 0; j < 16; j++) x[i][j] = c[j] + 2 * r.nextGaussian();
    }
    return x;
  }

  @Test
  void ivfFlatIsExactWithAllListsAndHasHighRecallWithFew() throws Exception {
    double[][] x = blobs(4000, 11);
    float[] y = new float[x.length];
    double[][] queries = blobs(200, 12);
    for (boolean cosine : new boolean[] {false, true}) {
      KnnRunner.Model exact = new KnnRunner.Model(x, y, 10, true, cosine);
      int nlist = IvfIndex.autoNlist(x.length);
      KnnRunner.Model all = new KnnRunner.Model(x, y, 10, true, cosine, IvfIndex.build(x, nlist, nlist, cosine, 1));
      IvfIndex few = IvfIndex.build(x, nlist, IvfIndex.autoNprobe(nlist), cosine, 1);
      KnnRunner.Model approx = new KnnRunner.Model(x, y, 10, true, cosine, few);
      int found = 0;
      long scanned = 0;
      for (double[] q : queries) {
        int[] truth = exact.neighbours(q);
        assertArrayEquals(truth, all.neighbours(q), "nprobe = nlist is exact search");
        java.util.Set<Integer> t = new java.util.HashSet<>();
        for (int i : truth) t.add(i);
        for (int i : approx.neighbours(q)) if (t.contains(i)) found++;
        scanned += few.candidates(q).length;
      }
      double recall = found / (10.0 * queries.length);
      System.out.printf("knn faiss.IVFFlat 4000 x 16, nlist %d nprobe %d, cosine %s: recall@10 %.3f, scanned %.1f%%%n",
          nlist, IvfIndex.autoNprobe(nlist), cosine, recall, 100.0 * scanned / ((double) x.length * queries.length));
      assertTrue(recall >= 0.9, "recall@10 " + recall + " cosine " + cosine);
      assertTrue(scanned < 0.3 * x.length * queries.length, "scanned " + scanned);
    }
  }

  @Test
  void ivfFlatTaskOnFashionMnist() throws Exception {
    Path job = tmp.resolve("job");
    Map<String, Double> m = completed(run(assignment(Map.of("train", TestData.fashionSmall().toString()), job,
        "k", "5", "predictor_type", "classifier", "sample_size", "2000", "index_type", "faiss.IVFFlat")));
    // the exact search's accuracy on this set is 0.787 (fashionMnistClassifier)
    System.out.printf("knn faiss.IVFFlat on fashion-mnist-small: validation_accuracy %.4f, evaluation_seconds %.3f%n",
        m.get("validation_accuracy"), m.get("evaluation_seconds"));
    assertTrue(m.get("validation_accuracy") > 0.75, m::toString);
    JsonObject d = JsonParser.parseString(Files.readString(job.resolve("model/kiln-model.json"))).getAsJsonObject();
    assertEquals("faiss.IVFFlat", d.get("index_type").getAsString());
    int nlist = d.get("faiss_index_ivf_nlist").getAsInt();
    assertEquals(45, nlist);
    assertEquals(6, d.get("faiss_index_nprobe").getAsInt());
    assertEquals(4L * (nlist * 784 + 2000), Files.size(job.resolve("model/ivf.f32")));
  }
}

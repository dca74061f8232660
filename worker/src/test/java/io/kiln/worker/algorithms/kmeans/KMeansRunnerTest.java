package io.kiln.worker.algorithms.kmeans;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The kmeans built-in: cluster recovery, seeding, errors, end to end through {@link TrainingTask}. */
class KMeansRunnerTest {
  @TempDir Path tmp;

  static TaskAssignment assignment(Map<String, String> channels, Path jobDir, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm("kmeans").putAllChannels(channels)
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1));
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

  static TaskReport last(List<TaskReport> reports) {
    return reports.get(reports.size() - 1);
  }

  /** {@code perCluster} points around each of {@code k} centres spaced 20 apart (sd 0.5); truth in {@code truth}. */
  static double[][] clusters(int k, int perCluster, int dim, long seed, int[] truth) {
    Random r = new Random(seed);
    double[][] centres = new double[k][dim];
    for (int c = 0; c < k; c++) for (int j = 0; j < dim; j++) centres[c][j] = 20 * r.nextInt(10);
    for (int c = 0; c < k; c++) { // make the centres distinct
      centres[c][0] = 20 * c;
    }
    double[][] x = new double[k * perCluster][dim];
    for (int i = 0; i < x.length; i++) {
      int c = i % k;
      truth[i] = c;
      for (int j = 0; j < dim; j++) x[i][j] = centres[c][j] + 0.5 * r.nextGaussian();
    }
    return x;
  }

  /** Assignments equal up to a permutation of the labels (a bijection). */
  static void assertSamePartition(int[] truth, int[] got) {
    Map<Integer, Integer> fwd = new HashMap<>();
    Map<Integer, Integer> back = new HashMap<>();
    for (int i = 0; i < truth.length; i++) {
      Integer f = fwd.putIfAbsent(truth[i], got[i]);
      Integer b = back.putIfAbsent(got[i], truth[i]);
      assertTrue((f == null || f == got[i]) && (b == null || b == truth[i]), "row " + i + " differs");
    }
  }

  @Test
  void recoversWellSeparatedClusters() throws Exception {
    for (boolean pp : new boolean[] {true, false}) {
      for (long seed = 0; seed < 5; seed++) {
        int[] truth = new int[5 * 60];
        double[][] x = clusters(5, 60, 3, 10 + seed, truth);
        KMeansRunner.Fit fit = KMeansRunner.fit(x, 5, pp, 100, 1e-4, seed, null);
        if (pp) assertSamePartition(truth, fit.assignments()); // random init may merge clusters: checked below
        assertTrue(fit.iterations() <= 100);
      }
    }
    // random init on 2 clusters is also exact
    int[] truth = new int[2 * 50];
    double[][] x = clusters(2, 50, 2, 99, truth);
    assertSamePartition(truth, KMeansRunner.fit(x, 2, false, 100, 1e-4, 3, null).assignments());
  }

  @Test
  void plusPlusPicksDistinctSeeds() {
    int[] truth = new int[4 * 25];
    double[][] x = clusters(4, 25, 2, 7, truth);
    for (long s = 0; s < 20; s++) {
      int[] seeds = KMeansRunner.plusPlusSeeds(x, 4, new Random(s));
      Set<Integer> rows = new HashSet<>();
      Set<Integer> clusters = new HashSet<>();
      for (int i : seeds) {
        rows.add(i);
        clusters.add(truth[i]);
      }
      assertEquals(4, rows.size());
      // far-apart clusters: D^2 sampling puts one seed in each with overwhelming probability
      assertEquals(4, clusters.size());
    }
    double[][] dup = {{1, 1}, {1, 1}, {2, 2}};
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> KMeansRunner.plusPlusSeeds(dup, 3, new Random(0)));
    assertTrue(e.getMessage().contains("distinct"), e.getMessage());
  }

  @Test
  void endToEndCsvWithValidation() throws Exception {
    int[] truth = new int[3 * 40];
    double[][] x = clusters(3, 40, 4, 5, truth);
    StringBuilder b = new StringBuilder();
    for (double[] row : x) {
      for (int j = 0; j < row.length; j++) b.append(j > 0 ? "," : "").append(String.format(Locale.ROOT, "%.4f", row[j]));
      b.append('\n');
    }
    Files.createDirectories(tmp.resolve("d"));
    Files.writeString(tmp.resolve("d/train.csv"), b.toString());
    Files.writeString(tmp.resolve("d/val.csv"), b.toString());
    Path job = tmp.resolve("job");
    List<TaskReport> reports = run(assignment(Map.of("train", tmp.resolve("d/train.csv").toString(),
        "validation", tmp.resolve("d/val.csv").toString()), job, "k", "3", "seed", "1"));
    TaskReport end = last(reports);
    assertEquals(TaskReport.KindCase.COMPLETED, end.getKindCase(), end::toString);
    Map<String, Double> m = end.getCompleted().getMetricsMap();
    // every CSV column is a feature (no label column): 4 features; inertia ~ rows * dim * 0.25
    assertEquals(4.0, m.get("features"));
    assertTrue(m.get("train_inertia") < 120 * 4 * 0.25 * 1.5, m::toString);
    assertEquals(m.get("train_inertia"), m.get("validation_inertia"), 1e-6);
    assertTrue(reports.stream().anyMatch(r -> r.hasProgress() && r.getProgress().getMetricsMap()
        .containsKey("train_inertia")));
    JsonObject d = JsonParser.parseString(Files.readString(job.resolve("model/kiln-model.json"))).getAsJsonObject();
    assertEquals("kmeans", d.get("algorithm").getAsString());
    assertEquals(3, d.get("k").getAsInt());
    assertEquals(4L * 3 * 4, Files.size(job.resolve("model/centroids.f32")));
  }

  @Test
  void errors() throws Exception {
    Files.createDirectories(tmp.resolve("d"));
    Files.writeString(tmp.resolve("d/train.csv"), "1,2\n3,4\n5,6\n");
    Map<String, String> ch = Map.of("train", tmp.resolve("d/train.csv").toString());
    List<TaskReport> r = run(assignment(ch, tmp.resolve("j1"), "k", "4"));
    assertEquals(TaskReport.KindCase.FAILED, last(r).getKindCase());
    assertTrue(last(r).getFailed().getReason().contains("k 4 is larger than the 3 training rows"),
        last(r).getFailed().getReason());
    r = run(assignment(ch, tmp.resolve("j2"), "init", "forgy", "tol", "-1", "max_iter", "0"));
    String reason = last(r).getFailed().getReason();
    assertTrue(reason.contains("k is required"), reason);
    assertTrue(reason.contains("init 'forgy'"), reason);
    assertTrue(reason.contains("tol -1"), reason);
    assertTrue(reason.contains("max_iter 0"), reason);
    assertThrows(IllegalArgumentException.class, () -> KMeansRunner.fit(new double[][] {{1}}, 2, true, 10, 0, 0, null));
  }

  @Test
  void twoRanksComputeTheOneRankClusters() throws Exception {
    int[] truth = new int[4 * 51];
    double[][] x = clusters(4, 51, 3, 21, truth);
    Map<String, String> ch = Map.of("train",
        io.kiln.worker.algorithms.BuiltinHarness.csv(tmp.resolve("d/train.csv"), null, x).toString());
    // k-means++ on the 4 clusters, and random init with more centroids than clusters
    for (String[] hp : new String[][] {{"k", "4", "seed", "3"}, {"k", "6", "init", "random", "seed", "5"}}) {
      Path one = tmp.resolve("one" + hp[1]);
      Path two = tmp.resolve("two" + hp[1]);
      Map<String, Double> m1 = io.kiln.worker.algorithms.BuiltinHarness.completed(
          io.kiln.worker.algorithms.BuiltinHarness.run("kmeans", ch, one, hp));
      List<List<TaskReport>> ranks = io.kiln.worker.algorithms.BuiltinHarness.runRanks(2, "kmeans", ch, two, hp);
      Map<String, Double> r0 = io.kiln.worker.algorithms.BuiltinHarness.completed(ranks.get(0));
      Map<String, Double> r1 = io.kiln.worker.algorithms.BuiltinHarness.completed(ranks.get(1));
      assertEquals(102.0, r0.get("rank_train_rows"));
      assertEquals(r0.get("train_inertia"), r1.get("train_inertia"), 0.0);
      assertEquals(m1.get("iterations"), r0.get("iterations"));
      assertEquals(m1.get("train_inertia"), r0.get("train_inertia"), 1e-9 * m1.get("train_inertia"));
      assertArrayEquals(Files.readAllBytes(one.resolve("model/centroids.f32")),
          Files.readAllBytes(two.resolve("model/centroids.f32")));
    }
    // and k 4 finds the true clusters
    KMeansRunner.Fit fit = KMeansRunner.fit(x, 4, true, 100, 1e-4, 3, null);
    assertSamePartition(truth, fit.assignments());
  }

  @Test
  void anEmptyClusterTakesTheFarthestRowOverAllRanks() throws Exception {
    double[][] x = {{0, 0}, {0, 1}, {1, 0}, {9, 9}, {5, 5}, {5, 6}, {6, 5}};
    // the middle centroid is far from every row: its cluster is empty in the first iteration
    double[][] init = {{0, 0.5}, {100, 100}, {5.5, 5.5}};
    KMeansRunner.Fit one = KMeansRunner.fit(x, copy(init), 10, 0, io.kiln.worker.algorithms.group.RankGroup.solo(),
        null, null);
    // it took the row farthest from its centroid: (9, 9)
    assertTrue(java.util.Arrays.stream(one.centroids()).anyMatch(c -> c[0] == 9 && c[1] == 9),
        java.util.Arrays.deepToString(one.centroids()));
    List<KMeansRunner.Fit> two = io.kiln.worker.algorithms.group.RankGroupTest.onRanks(2, g -> {
      double[][] shard = new double[(x.length - g.rank() + 1) / 2][];
      for (int i = g.rank(), j = 0; i < x.length; i += 2, j++) shard[j] = x[i];
      return KMeansRunner.fit(shard, copy(init), 10, 0, g, null, null);
    });
    for (KMeansRunner.Fit f : two) {
      assertEquals(one.inertia(), f.inertia(), 1e-12);
      assertEquals(one.iterations(), f.iterations());
      for (int c = 0; c < 3; c++) assertArrayEquals(one.centroids()[c], f.centroids()[c], 1e-12);
    }
  }

  static double[][] copy(double[][] a) {
    double[][] c = new double[a.length][];
    for (int i = 0; i < a.length; i++) c[i] = a[i].clone();
    return c;
  }
}

package io.kiln.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The distributed built-ins across real processes: a coordinator JVM and two worker JVMs
 * ({@link LocalCluster}), jobs over REST on the committed Fashion-MNIST subset (3,000 training
 * rows, the 1,000 t10k rows as the validation set), each run with {@code workers: 1} and
 * {@code workers: 2}. XGBoost's ranks meet through its own tracker wired by Kiln; linear-learner,
 * kmeans and pca through Kiln's TCP ring, formed by the coordinator's rendezvous.
 */
class BuiltinAlgorithmsClusterTest {
  static final Duration JOB_TIMEOUT = Duration.ofSeconds(240);

  @TempDir Path dataDir;

  static Map<String, Object> spec(String algorithm, int workers, Map<String, Object> hp) {
    Map<String, Object> s = new HashMap<>();
    s.put("name", algorithm + "-" + workers);
    s.put("algorithm", algorithm);
    s.put("hyperparameters", hp);
    s.put("channels", Map.of("train", ClusterEndToEndTest.SMALL_DATA));
    s.put("resources", Map.of("workers", workers, "cpusPerWorker", 1));
    return s;
  }

  /** Runs the job on 1 and on 2 workers; both must complete; returns {one, two}. */
  static JobView[] oneAndTwo(KilnClient api, String algorithm, Map<String, Object> hp) throws Exception {
    JobView one = api.awaitFinal(api.createJob(spec(algorithm, 1, hp)).id(), JOB_TIMEOUT, Duration.ofMillis(500));
    assertEquals("Completed", one.status(), algorithm + " on 1 worker: " + one.failureReason());
    JobView two = api.awaitFinal(api.createJob(spec(algorithm, 2, hp)).id(), JOB_TIMEOUT, Duration.ofMillis(500));
    assertEquals("Completed", two.status(), algorithm + " on 2 workers: " + two.failureReason());
    assertEquals(2, two.workers().size(), String.valueOf(two.workers()));
    assertTrue(two.history().stream().anyMatch(h -> h.event().equals("GroupFormed") && h.detail().contains("2 ranks")),
        String.valueOf(two.history()));
    System.out.printf("%s: 1 worker %s%n%s: 2 workers %s%n", algorithm, one.metrics(), algorithm, two.metrics());
    return new JobView[] {one, two};
  }

  @Test
  void distributedBuiltinsMatchOneWorker() throws Exception {
    LocalCluster.Options o = LocalCluster.Options.builder().repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir)
        .workers(2).apiPort(0).clusterPort(0).journal("h2").readyTimeout(Duration.ofSeconds(150)).killOnExit(true)
        .build();
    try (LocalCluster cluster = LocalCluster.start(o)) {
      KilnClient api = cluster.client();

      // XGBoost distributed (its tracker, started by rank 0 and announced through Kiln's rendezvous)
      // gives the accuracy of XGBoost on one worker on the same data.
      JobView[] xgb = oneAndTwo(api, "xgboost", Map.of("objective", "multi:softprob", "num_class", 10,
          "num_round", 10, "max_depth", 4, "eta", 0.3));
      double acc1 = xgb[0].metric("validation_accuracy");
      double acc2 = xgb[1].metric("validation_accuracy");
      assertTrue(acc1 > 0.75, "xgboost accuracy " + acc1);
      assertEquals(acc1, acc2, 0.01, "xgboost: 2 workers' validation accuracy vs 1 worker's");
      assertEquals(3000.0, xgb[1].metric("train_rows"));

      // linear-learner: data-parallel SGD; shards see rows in another order, so close, not equal.
      JobView[] lin = oneAndTwo(api, "linear-learner", Map.of("predictor_type", "multiclass_classifier",
          "num_classes", 10, "epochs", 5, "mini_batch_size", 100));
      assertTrue(lin[0].metric("validation_accuracy") > 0.7, "linear-learner accuracy " + lin[0].metrics());
      assertEquals(lin[0].metric("validation_accuracy"), lin[1].metric("validation_accuracy"), 0.03);

      // kmeans and pca exchange exact sums: the same model as on one worker.
      JobView[] km = oneAndTwo(api, "kmeans", Map.of("k", 10, "max_iter", 20, "seed", 1));
      assertEquals(km[0].metric("train_inertia"), km[1].metric("train_inertia"), 1e-9 * km[0].metric("train_inertia"));
      assertEquals(km[0].metric("iterations"), km[1].metric("iterations"));
      JobView[] pca = oneAndTwo(api, "pca", Map.of("num_components", 10));
      assertEquals(pca[0].metric("explained_variance_ratio"), pca[1].metric("explained_variance_ratio"), 1e-9);
      assertTrue(pca[0].metric("explained_variance_ratio") > 0.5, String.valueOf(pca[0].metrics()));

      // bad hyperparameters fail the job at its start with every problem named
      JobView bad = api.awaitFinal(api.createJob(spec("linear-learner", 1, Map.of("predictor_type", "ranker",
          "epochz", 3))).id(), JOB_TIMEOUT, Duration.ofMillis(300));
      assertEquals("Failed", bad.status());
      assertTrue(bad.failureReason().contains("unknown hyperparameter epochz")
          && bad.failureReason().contains("predictor_type 'ranker'"), bad.failureReason());
    }
  }
}

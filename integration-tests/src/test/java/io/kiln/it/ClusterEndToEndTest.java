package io.kiln.it;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.cli.KilnCli;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The walking skeleton end to end, with real processes on loopback: a coordinator JVM and two
 * worker JVMs started by {@link LocalCluster} (as `kiln local up` does), jobs submitted over REST,
 * trained with DJL on the committed Fashion-MNIST subset, a worker killed with SIGKILL mid-job, the
 * coordinator killed with SIGKILL and restarted, on H2 and on the local PostgreSQL.
 */
class ClusterEndToEndTest {
  static final Path REPO = Path.of(System.getProperty("kiln.repo.root", "..")).toAbsolutePath().normalize();
  static final String SMALL_DATA = REPO.resolve("testdata/fashion-mnist-small").toString();
  static final Duration JOB_TIMEOUT = Duration.ofSeconds(180);

  @TempDir Path dataDir;

  static Map<String, Object> spec(String name, String train, int epochs) {
    return Map.of("name", name, "algorithm", "mlp",
        "hyperparameters", Map.of("epochs", epochs, "batch_size", 64, "learning_rate", 0.05, "hidden", "128"),
        "channels", Map.of("train", train));
  }

  private LocalCluster start(String journal, String postgresUrl) {
    LocalCluster.Options.Builder b = LocalCluster.Options.builder()
        .repoRoot(REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal(journal)
        .readyTimeout(Duration.ofSeconds(150)).killOnExit(true);
    if (postgresUrl != null) b.postgresUrl(postgresUrl);
    return LocalCluster.start(b.build());
  }

  @Test
  void onH2_trainsFailsCleanlySurvivesCrashesAndRestarts() throws Exception {
    try (LocalCluster cluster = start("h2", null)) {
      KilnClient api = cluster.client();

      // A real job runs to completion and leaves a model.
      JobView done = api.awaitFinal(api.createJob(spec("small-mlp", SMALL_DATA, 3)).id(), JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", done.status(), done.failureReason());
      assertTrue(done.testAccuracy() > 0.6, "test accuracy " + done.testAccuracy());
      Path model = Path.of(URI.create(done.modelUri()));
      assertTrue(Files.exists(model.resolve("model.json")), "model.json in " + model);
      List<String> lines = new ArrayList<>();
      assertEquals("Completed", api.streamLogs(done.id(), true, l -> lines.add(l.message())));
      assertTrue(lines.stream().anyMatch(l -> l.contains("epoch 3/3")), String.join("\n", lines));

      // Its epoch-end checkpoint is in the journal; a new job resumes from it and trains one more epoch.
      String checkpoint = api.getJson(KilnClient.jobPath(done.id())).path("checkpointUri").asText();
      assertTrue(checkpoint.contains("/checkpoints/step-"), "checkpoint of " + done.id() + ": " + checkpoint);
      Map<String, Object> more = new java.util.HashMap<>(spec("resumed-mlp", SMALL_DATA, 4));
      more.put("checkpoint", Map.of("resumeFrom", checkpoint));
      JobView resumed = api.awaitFinal(api.createJob(more).id(), JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", resumed.status(), resumed.failureReason());
      List<String> resumedLog = new ArrayList<>();
      api.streamLogs(resumed.id(), false, l -> resumedLog.add(l.message()));
      assertTrue(resumedLog.stream().anyMatch(l -> l.startsWith("resumed from") && l.contains("epoch 4")),
          String.join("\n", resumedLog));

      // Data-parallel on both workers: the coordinator forms the group, gradients go worker to worker.
      Map<String, Object> twoRanks = new java.util.HashMap<>(spec("dp-mlp", SMALL_DATA, 2));
      twoRanks.put("resources", Map.of("workers", 2));
      JobView dp = api.awaitFinal(api.createJob(twoRanks).id(), JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", dp.status(), dp.failureReason());
      assertEquals(2, dp.workers().size());
      assertTrue(dp.history().stream().anyMatch(h -> h.event().equals("GroupFormed") && h.detail().contains("2 ranks")),
          String.valueOf(dp.history()));
      assertTrue(dp.testAccuracy() > 0.6, "data-parallel test accuracy " + dp.testAccuracy());
      assertTrue(dp.metric("comm_ms_per_step") > 0, "communication time is reported");

      // NCCL forced on CPU-only workers: a clear failure, not a hang.
      Map<String, Object> nccl = new java.util.HashMap<>(spec("nccl-on-cpu", SMALL_DATA, 1));
      nccl.put("resources", Map.of("workers", 2, "collective", "nccl"));
      JobView noNccl = api.awaitFinal(api.createJob(nccl).id(), JOB_TIMEOUT, Duration.ofMillis(300));
      assertEquals("Failed", noNccl.status());
      assertTrue(noNccl.failureReason().contains("nccl"), noNccl.failureReason());

      // An unreadable dataset fails the job with the reason.
      JobView bad = api.awaitFinal(api.createJob(spec("bad-data", "/nonexistent/fashion", 1)).id(), JOB_TIMEOUT, Duration.ofMillis(300));
      assertEquals("Failed", bad.status());
      assertTrue(bad.failureReason().contains("/nonexistent/fashion"), bad.failureReason());

      // A worker killed mid-job: its only rank is lost, so the job goes back to the queue and resumes
      // from its newest checkpoint on the other worker.
      Map<String, Object> longSpec = new java.util.HashMap<>(spec("long-mlp", SMALL_DATA, 1000));
      longSpec.put("checkpoint", Map.of("everySteps", 20));
      String longId = api.createJob(longSpec).id();
      JobView running = awaitProgress(api, longId);
      String victim = running.workers().get(0);
      long killedAt = System.nanoTime();
      cluster.killWorker(victim, true);
      JobView moved = awaitRestarted(api, longId);
      System.out.printf("worker loss detected and the job requeued in %.1f s%n", (System.nanoTime() - killedAt) / 1e9);
      io.kiln.sdk.HistoryEntry restart = moved.history().stream().filter(h -> h.event().equals("Restarted")).findFirst().orElseThrow();
      assertTrue(restart.detail().contains(victim) && restart.detail().contains("left the cluster"), restart.detail());
      JobView resumedElsewhere = awaitProgress(api, longId);
      assertFalse(resumedElsewhere.workers().contains(victim), String.valueOf(resumedElsewhere.workers()));
      api.stopJob(longId);
      assertEquals("Stopped", api.awaitFinal(longId, Duration.ofSeconds(60), Duration.ofMillis(250)).status());

      // The CLI, in process, against the same cluster.
      String listing = cli("jobs", "--data-dir", dataDir.toString());
      assertTrue(listing.contains(done.id()) && listing.contains("Completed") && listing.contains("Failed")
          && listing.contains("Stopped"), listing);
      String json = cli("describe", done.id(), "--output", "json", "--data-dir", dataDir.toString());
      assertEquals(done.modelUri(), KilnClient.MAPPER.readTree(json).get("modelUri").asText());

      // The coordinator killed with SIGKILL and restarted: every job is still there, as it was.
      List<JobView> before = withHistory(api, api.listJobs());
      cluster.killCoordinator(true);
      cluster.restartCoordinator();
      List<JobView> after = withHistory(api, api.listJobs());
      assertEquals(summary(before), summary(after));

      // The surviving worker re-joins the new coordinator and takes new work.
      cluster.awaitReady(1, Duration.ofSeconds(90), m -> { });
      JobView again = api.awaitFinal(api.createJob(spec("after-restart", SMALL_DATA, 1)).id(), JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", again.status(), again.failureReason());
    }
  }

  @Test
  void onPostgres_jobsSurviveACoordinatorCrash() throws Exception {
    String db = "kiln_it_" + Long.toHexString(System.nanoTime());
    try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:5432/postgres", "postgres", "")) {
      c.createStatement().execute("CREATE DATABASE " + db);
    }
    try (LocalCluster cluster = start("postgres", "jdbc:postgresql://127.0.0.1:5432/" + db)) {
      KilnClient api = cluster.client();
      JobView done = api.awaitFinal(api.createJob(spec("pg-mlp", SMALL_DATA, 2)).id(), JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", done.status(), done.failureReason());
      List<JobView> before = withHistory(api, api.listJobs());
      cluster.killCoordinator(true);
      cluster.restartCoordinator();
      assertEquals(summary(before), summary(withHistory(api, api.listJobs())));
    } finally {
      try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:5432/postgres", "postgres", "")) {
        c.createStatement().execute("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
      }
    }
  }

  private static JobView awaitProgress(KilnClient api, String id) throws InterruptedException {
    long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      JobView v = api.getJob(id);
      if (v.status().equals("Running") && v.progress() != null && v.progress().step() > 0) return v;
      assertFalse(v.isFinal(), "job ended early: " + v.status() + " " + v.failureReason());
      Thread.sleep(200);
    }
    throw new AssertionError("job " + id + " did not start making progress");
  }

  private static JobView awaitRestarted(KilnClient api, String id) throws InterruptedException {
    long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      JobView v = api.getJob(id);
      if (v.history().stream().anyMatch(h -> h.event().equals("Restarted"))) return v;
      assertFalse(v.isFinal(), "job ended: " + v.status() + " " + v.failureReason());
      Thread.sleep(200);
    }
    throw new AssertionError("job " + id + " was not restarted");
  }

  private static List<JobView> withHistory(KilnClient api, List<JobView> jobs) {
    return jobs.stream().map(j -> api.getJob(j.id())).toList();
  }

  /** What must survive a restart: identity, status, results and the whole history. */
  private static List<String> summary(List<JobView> jobs) {
    return jobs.stream().map(j -> String.join("|", j.id(), j.status(), String.valueOf(j.modelUri()),
        String.valueOf(j.metrics()), String.valueOf(j.failureReason()), String.valueOf(j.history()))).sorted().toList();
  }

  private static String cli(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertEquals(0, code, "kiln " + String.join(" ", args) + " failed: " + err);
    return out.toString();
  }
}

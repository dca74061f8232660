package io.kiln.it;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.HistoryEntry;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Elastic data-parallel training with real processes: three worker JVMs train one job; one is
 * killed with SIGKILL mid-epoch and the other two continue from the last completed step; a new
 * worker started afterwards joins the running job; the job finishes with every epoch's samples used
 * exactly once (from the job's own accounting) and a history that shows each membership change.
 * Then a job with {@code recovery: restart} loses a worker and resumes from its checkpoint instead.
 */
class ElasticTrainingTest {
  static final Duration JOB_TIMEOUT = Duration.ofSeconds(240);

  @TempDir Path dataDir;

  static Map<String, Object> elasticSpec(String name, int epochs, Object workers, String recovery) {
    Map<String, Object> spec = new HashMap<>(ClusterEndToEndTest.spec(name, ClusterEndToEndTest.SMALL_DATA, epochs));
    spec.put("resources", Map.of("workers", workers, "recovery", recovery));
    spec.put("checkpoint", Map.of("everySteps", 25));
    return spec;
  }

  @Test
  void survivorsContinueAWorkerJoinsAndNoSampleIsLostOrRepeated() throws Exception {
    LocalCluster.Options o = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(3).apiPort(0).clusterPort(0).journal("h2")
        .readyTimeout(Duration.ofSeconds(150)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(o)) {
      KilnClient api = cluster.client();
      int epochs = 40;
      String id = api.createJob(elasticSpec("elastic-mlp", epochs, Map.of("min", 2, "max", 3), "elastic")).id();
      await(api, id, v -> historyCount(v, "GroupFormed") >= 1 && v.progress() != null && v.progress().step() > 30,
          "the 3-rank group formed and trains");
      JobView before = api.getJob(id);
      assertEquals(3, before.workers().size(), String.valueOf(before.history()));

      // kill -9 one rank mid-epoch: the other two regroup and continue
      String victim = before.workers().get(1);
      Instant killedAt = Instant.now();
      cluster.killWorker(victim, true);
      JobView regrouped = await(api, id, v -> historyCount(v, "GroupFormed") >= 2, "the survivors regroup");
      HistoryEntry g2 = regrouped.history().stream().filter(h -> h.event().equals("GroupFormed")).toList().get(1);
      double resumedAfter = Duration.between(killedAt, Instant.parse(g2.at())).toMillis() / 1000.0;
      System.out.printf("kill -9 %s -> generation 2 formed in %.2f s: %s%n", victim, resumedAfter, g2.detail());
      assertTrue(g2.detail().contains("2 ranks"), g2.detail());
      assertTrue(regrouped.history().stream().anyMatch(h -> h.event().equals("MemberLeft") && h.detail().contains(victim)),
          String.valueOf(regrouped.history()));
      assertTrue(resumedAfter < 15, "regrouped " + resumedAfter + " s after the kill");

      JobView done = api.awaitFinal(id, JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", done.status(), done.failureReason());
      assertEquals(epochs, done.metric("epochs_exactly_once").intValue(), "epochs whose samples were each used once");
      assertEquals(0, done.metric("sample_accounting_errors").intValue());
      assertTrue(done.testAccuracy() > 0.7, "test accuracy " + done.testAccuracy());
      List<String> log = new java.util.ArrayList<>();
      api.streamLogs(id, false, l -> log.add(l.message()));
      assertTrue(log.stream().anyMatch(l -> l.startsWith("generation 2: rank")), String.join("\n", log));

      // the killed worker is replaced; then a long job on the three workers: one more worker
      // worker started while it runs joins it at a step boundary
      cluster.addWorker();
      cluster.awaitReady(3, Duration.ofSeconds(120), m -> { });
      String longId = api.createJob(elasticSpec("elastic-grow", 1000, Map.of("min", 2, "max", 4), "elastic")).id();
      await(api, longId, v -> historyCount(v, "GroupFormed") >= 1 && v.progress() != null && v.progress().step() > 10,
          "the long job trains");
      int ranks = api.getJob(longId).workers().size();
      cluster.addWorker();
      JobView grown = await(api, longId, v -> historyCount(v, "MemberJoined") >= 1
          && last(v, "GroupFormed").detail().contains((ranks + 1) + " ranks"), "a new worker joins");
      assertTrue(last(grown, "GroupFormed").detail().contains("continuing at step"), last(grown, "GroupFormed").detail());
      api.stopJob(longId);
      assertEquals("Stopped", api.awaitFinal(longId, Duration.ofSeconds(60), Duration.ofMillis(250)).status());
      List<String> longLog = new java.util.ArrayList<>();
      api.streamLogs(longId, false, l -> longLog.add(l.message()));
      assertTrue(longLog.stream().anyMatch(l -> l.matches("epoch \\d+: 3000 of 3000 samples used, each exactly once.*")),
          String.join("\n", longLog));
      assertTrue(longLog.stream().noneMatch(l -> l.contains("sample accounting mismatch")), String.join("\n", longLog));
    }
  }

  @Test
  void restartRecoveryResumesFromTheCheckpointOnTheSurvivors() throws Exception {
    LocalCluster.Options o = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(3).apiPort(0).clusterPort(0).journal("h2")
        .readyTimeout(Duration.ofSeconds(150)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(o)) {
      KilnClient api = cluster.client();
      String id = api.createJob(elasticSpec("restart-mlp", 12, Map.of("min", 2, "max", 3), "restart")).id();
      await(api, id, v -> historyCount(v, "GroupFormed") >= 1 && v.progress() != null && v.progress().step() > 60,
          "a checkpoint is committed");
      String victim = api.getJob(id).workers().get(0);
      cluster.killWorker(victim, true);
      JobView restarted = await(api, id, v -> historyCount(v, "Restarted") >= 1 && historyCount(v, "GroupFormed") >= 2,
          "the job restarts from its checkpoint");
      assertTrue(last(restarted, "Restarted").detail().contains("resuming from"), last(restarted, "Restarted").detail());
      JobView done = api.awaitFinal(id, JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", done.status(), done.failureReason());
      List<String> log = new java.util.ArrayList<>();
      api.streamLogs(id, false, l -> log.add(l.message()));
      assertTrue(log.stream().anyMatch(l -> l.startsWith("resumed from")), String.join("\n", log));
    }
  }

  /**
   * The coordinator killed with SIGKILL mid-job and restarted: the ranks keep training meanwhile and
   * the recovered job re-attaches them (no restart, no lost step). Then everything is killed and
   * started again: the job resumes from its newest checkpoint.
   */
  @Test
  void aRunningJobCarriesOnAcrossACoordinatorRestartAndResumesAfterAFullRestart() throws Exception {
    LocalCluster.Options o = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .coordinatorProperty("kiln.jobs.reattach-timeout", "60s")
        .readyTimeout(Duration.ofSeconds(150)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(o)) {
      KilnClient api = cluster.client();
      int epochs = 400; // long enough (~80 s here) to be running still when the coordinator is back
      String id = api.createJob(elasticSpec("survives-coordinator", epochs, 2, "elastic")).id();
      await(api, id, v -> historyCount(v, "GroupFormed") >= 1 && v.progress() != null && v.progress().step() > 20,
          "the job trains");
      cluster.killCoordinator(true);
      cluster.restartCoordinator();
      // Its tasks report back (Reattached), or, on a fast machine, they finished training while the
      // coordinator was down and their held final reports complete the job: either way no restart.
      JobView back = awaitOrFinal(api, id, v -> historyCount(v, "Reattached") >= 1, "its tasks report back");
      assertEquals(0, historyCount(back, "Restarted"), String.valueOf(back.history()));
      JobView done = api.awaitFinal(id, JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", done.status(), done.failureReason());
      assertEquals(epochs, done.metric("epochs_exactly_once").intValue());
      assertEquals(0, historyCount(done, "Restarted"), String.valueOf(done.history()));

      // kill everything, start it again: the job resumes from its newest checkpoint
      String longId = api.createJob(elasticSpec("survives-everything", 1000, 2, "elastic")).id();
      await(api, longId, v -> historyCount(v, "CheckpointCommitted") >= 1 || (v.progress() != null && v.progress().step() > 60),
          "a checkpoint is committed");
      for (LocalCluster.Node n : cluster.workers()) cluster.killWorker(n.name(), true);
      cluster.killCoordinator(true);
      cluster.restartCoordinator();
      cluster.addWorker();
      cluster.addWorker();
      JobView resumed = await(api, longId, v -> historyCount(v, "Restarted") >= 1 && "Running".equals(v.status())
          && historyCount(v, "GroupFormed") >= 2, "the job resumes from its checkpoint");
      assertTrue(last(resumed, "Restarted").detail().contains("resuming from"), last(resumed, "Restarted").detail());
      api.stopJob(longId);
      api.awaitFinal(longId, Duration.ofSeconds(60), Duration.ofMillis(250));
      List<String> log = new java.util.ArrayList<>();
      api.streamLogs(longId, false, l -> log.add(l.message()));
      assertTrue(log.stream().anyMatch(l -> l.startsWith("resumed from")), String.join("\n", log));
    }
  }

  static long historyCount(JobView v, String event) {
    return v.history().stream().filter(h -> h.event().equals(event)).count();
  }

  static HistoryEntry last(JobView v, String event) {
    List<HistoryEntry> h = v.history().stream().filter(e -> e.event().equals(event)).toList();
    return h.get(h.size() - 1);
  }

  static JobView awaitOrFinal(KilnClient api, String id, Predicate<JobView> condition, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
    JobView v = null;
    while (System.nanoTime() < deadline) {
      v = api.getJob(id);
      if (condition.test(v) || v.isFinal()) return v;
      Thread.sleep(200);
    }
    throw new AssertionError("timed out waiting until " + what + ": " + (v == null ? "" : v.history()));
  }

  static JobView await(KilnClient api, String id, Predicate<JobView> condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
    JobView v = null;
    while (System.nanoTime() < deadline) {
      v = api.getJob(id);
      if (condition.test(v)) return v;
      assertFalse(v.isFinal(), "job ended before " + what + ": " + v.status() + " " + v.failureReason() + " " + v.history());
      Thread.sleep(200);
    }
    throw new AssertionError("timed out waiting until " + what + ": " + (v == null ? "" : v.history()));
  }
}

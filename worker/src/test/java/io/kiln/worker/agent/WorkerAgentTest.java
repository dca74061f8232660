package io.kiln.worker.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.WorkerInfo;
import io.kiln.worker.TestData;
import io.kiln.worker.WorkerSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent in a local actor system with serialize-messages on: every WorkerCommand and report
 * goes through Kiln's protobuf serializer as it would between nodes.
 */
class WorkerAgentTest {
  static ActorTestKit testKit;
  @TempDir static Path tmp;

  @BeforeAll
  static void start() {
    testKit = ActorTestKit.create("kiln", ConfigFactory.parseString("""
        pekko.actor.provider = local
        pekko.actor.serialize-messages = on
        pekko.loglevel = INFO
        """).withFallback(ConfigFactory.load()));
  }

  @AfterAll
  static void stop() {
    testKit.shutdownTestKit();
  }

  static TaskAssignment assignment(String taskId, String train, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm("mlp").putChannels("train", train)
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    return TaskAssignment.newBuilder().setJobId("job-" + taskId).setTaskId(taskId).setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(tmp.resolve("jobs/" + taskId).toUri().toString()).build();
  }

  ActorRef<WorkerCommand> spawnAgent(String id) {
    return testKit.spawn(WorkerAgent.create(WorkerSettings.of(id, 2, tmp.resolve("artifacts"))), "agent-" + id);
  }

  /** Reports until (and including) the final one. */
  static List<TaskReport> untilFinal(TestProbe<TaskReport> probe, Duration max) {
    List<TaskReport> out = new ArrayList<>();
    long deadline = System.nanoTime() + max.toNanos();
    while (true) {
      Duration left = Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
      TaskReport r = probe.receiveMessage(left);
      out.add(r);
      if (r.hasCompleted() || r.hasFailed()) return out;
    }
  }

  @Test
  void registersWithTheReceptionistAndDescribesItself() {
    ActorRef<WorkerCommand> agent = spawnAgent("w-describe");
    TestProbe<Receptionist.Listing> listing = testKit.createTestProbe();
    listing.awaitAssert(() -> {
      testKit.system().receptionist().tell(Receptionist.find(WorkerCommand.SERVICE_KEY, listing.ref()));
      assertTrue(listing.receiveMessage().getServiceInstances(WorkerCommand.SERVICE_KEY).contains(agent));
      return null;
    });
    TestProbe<WorkerInfo> info = testKit.createTestProbe();
    agent.tell(new WorkerCommand.DescribeWorker(info.ref()));
    WorkerInfo wi = info.receiveMessage();
    assertEquals("w-describe", wi.getWorkerId());
    assertEquals(2, wi.getResources().getCpus());
    assertTrue(wi.getResources().getMemoryMb() > 0);
    assertTrue(wi.getStartedAtMs() > 0);
    assertTrue(!wi.getHost().isEmpty());
    assertEquals(0, wi.getRunningTaskIdsCount());
  }

  @Test
  void runsATaskToCompletion() throws Exception {
    ActorRef<WorkerCommand> agent = spawnAgent("w-run");
    TestProbe<TaskReport> reports = testKit.createTestProbe();
    agent.tell(new WorkerCommand.StartTask(assignment("t-run", TestData.fashionSmall().toString(), "epochs", "2"),
        reports.ref()));
    TaskReport first = reports.receiveMessage(Duration.ofSeconds(30));
    assertEquals(TaskReport.KindCase.STARTED, first.getKindCase());
    assertEquals("w-run", first.getWorkerId());

    TestProbe<WorkerInfo> info = testKit.createTestProbe();
    agent.tell(new WorkerCommand.DescribeWorker(info.ref()));
    assertEquals(List.of("t-run"), info.receiveMessage().getRunningTaskIdsList());

    List<TaskReport> rest = untilFinal(reports, Duration.ofSeconds(90));
    TaskReport last = rest.get(rest.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(), rest.toString());
    List<TaskReport> progress = rest.stream().filter(TaskReport::hasProgress).toList();
    assertTrue(!progress.isEmpty(), "at least the final progress report");
    assertEquals(2 * 47, progress.get(progress.size() - 1).getProgress().getStep());
    assertTrue(rest.stream().filter(TaskReport::hasLogs).flatMap(r -> r.getLogs().getLinesList().stream())
        .anyMatch(l -> l.getMessage().startsWith("epoch 2/2 step 47/47 loss ")));
    assertTrue(last.getCompleted().getMetricsMap().get("test_accuracy") > 0.6);
    assertTrue(Files.exists(tmp.resolve("jobs/t-run/model/model.json")));

    // the finished task is no longer listed
    info.awaitAssert(() -> {
      agent.tell(new WorkerCommand.DescribeWorker(info.ref()));
      assertEquals(0, info.receiveMessage().getRunningTaskIdsCount());
      return null;
    });
  }

  @Test
  void stopTaskStopsItWithAStoppedReport() {
    ActorRef<WorkerCommand> agent = spawnAgent("w-stop");
    TestProbe<TaskReport> reports = testKit.createTestProbe();
    agent.tell(new WorkerCommand.StartTask(assignment("t-stop", TestData.fashionSmall().toString(), "epochs", "1000"),
        reports.ref()));
    assertTrue(reports.receiveMessage(Duration.ofSeconds(30)).hasStarted());
    // wait until it trains (first progress report), then stop it
    TaskReport r;
    do {
      r = reports.receiveMessage(Duration.ofSeconds(30));
    } while (!r.hasProgress());
    long stopAt = System.nanoTime();
    agent.tell(new WorkerCommand.StopTask("job-t-stop", "t-stop", "user request"));
    List<TaskReport> rest = untilFinal(reports, Duration.ofSeconds(10));
    TaskReport last = rest.get(rest.size() - 1);
    assertEquals("stopped: user request", last.getFailed().getReason());
    assertTrue(System.nanoTime() - stopAt < 5_000_000_000L, "stopped promptly");
    reports.expectNoMessage(Duration.ofMillis(300));
  }

  @Test
  void badDatasetFailsWithTheProblem() throws Exception {
    Path bad = Files.createDirectories(tmp.resolve("bad-data"));
    Files.write(bad.resolve("train-images-idx3-ubyte"), new byte[] {0, 0, 8, 1, 0, 0, 0, 1});
    Files.write(bad.resolve("train-labels-idx1-ubyte"), new byte[] {0, 0, 8, 1, 0, 0, 0, 1, 3});
    ActorRef<WorkerCommand> agent = spawnAgent("w-bad");
    TestProbe<TaskReport> reports = testKit.createTestProbe();
    agent.tell(new WorkerCommand.StartTask(assignment("t-bad", "file:" + bad), reports.ref()));
    List<TaskReport> all = untilFinal(reports, Duration.ofSeconds(30));
    assertTrue(all.get(0).hasStarted());
    String reason = all.get(all.size() - 1).getFailed().getReason();
    assertTrue(reason.contains("train-images-idx3-ubyte") && reason.contains("wrong magic number"), reason);

    // the worker is still fine: it describes itself and runs the next task
    TestProbe<WorkerInfo> info = testKit.createTestProbe();
    agent.tell(new WorkerCommand.DescribeWorker(info.ref()));
    assertEquals("w-bad", info.receiveMessage().getWorkerId());
  }
}

package io.kiln.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.StoppingCondition;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.WorkerInfo;
import io.kiln.worker.task.GradientSyncFactory;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real two-node cluster in one JVM: a stand-in coordinator node (the seed) and a {@link WorkerMain}.
 * The coordinator finds the agent through the receptionist and runs a task over the wire; then the
 * coordinator goes away and comes back on the same address, and the worker re-joins by itself.
 */
class WorkerMainTest {
  @TempDir Path tmp;

  static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  static ActorSystem<Void> coordinator(int port) {
    Config c = ConfigFactory.parseString("kiln.cluster.port = " + port + "\n"
            + "kiln.cluster.seed = \"127.0.0.1:" + port + "\"\n"
            + "pekko.cluster.roles = [coordinator]\n"
            + "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off\n");
    // load(c) resolves ${kiln.cluster.port} in reference.conf against c (ConfigFactory.load() alone would
    // already have resolved it to the default port)
    c = ConfigFactory.load(c);
    return ActorSystem.create(Behaviors.empty(), "kiln", c);
  }

  static ActorRef<WorkerCommand> awaitWorker(ActorTestKit kit, Set<ActorRef<WorkerCommand>> not) {
    TestProbe<Receptionist.Listing> probe = kit.createTestProbe();
    ActorRef<WorkerCommand>[] found = new ActorRef[1];
    probe.awaitAssert(Duration.ofSeconds(45), Duration.ofMillis(500), () -> {
      kit.system().receptionist().tell(Receptionist.find(WorkerCommand.SERVICE_KEY, probe.ref()));
      Set<ActorRef<WorkerCommand>> refs = probe.receiveMessage().getServiceInstances(WorkerCommand.SERVICE_KEY);
      refs.removeAll(not);
      assertEquals(1, refs.size(), "one worker agent registered");
      found[0] = refs.iterator().next();
      return null;
    });
    return found[0];
  }

  @Test
  void joinsRunsTasksAndRejoinsAfterTheCoordinatorLeaves() throws Exception {
    int port = freePort();
    ActorSystem<Void> coord = coordinator(port);
    ActorTestKit kit = ActorTestKit.create(coord);
    Config workerConfig = WorkerMain.loadConfig(ConfigFactory.load(ConfigFactory.parseString("kiln.cluster.port = 0\n"
            + "kiln.cluster.seed = \"127.0.0.1:" + port + "\"\n"
            + "kiln.worker.id = worker-it\nkiln.worker.cpus = 1\nkiln.worker.restart-delay = 300ms\n"
            + "kiln.data-dir = \"" + tmp + "\"\n")));
    WorkerMain main = new WorkerMain(workerConfig, GradientSyncFactory.SINGLE_RANK_ONLY);
    Thread runner = new Thread(main::run, "worker-main");
    runner.start();
    try {
      ActorRef<WorkerCommand> agent = awaitWorker(kit, Set.of());
      assertFalse(agent.path().address().equals(coord.address()), "the agent is remote");
      TestProbe<WorkerInfo> info = kit.createTestProbe();
      agent.tell(new WorkerCommand.DescribeWorker(info.ref()));
      WorkerInfo wi = info.receiveMessage(Duration.ofSeconds(10));
      assertEquals("worker-it", wi.getWorkerId());
      assertEquals(1, wi.getResources().getCpus());

      // a task over the wire; no job_artifacts_uri, so it lands under <kiln.data-dir>/artifacts
      TestProbe<TaskReport> reports = kit.createTestProbe();
      TaskAssignment a = TaskAssignment.newBuilder().setJobId("job-it").setTaskId("job-it-r0").setWorldSize(1)
          .setSpec(JobSpec.newBuilder().setAlgorithm("mlp").putChannels("train", TestData.fashionSmall().toString())
              .putHyperparameters("hidden", "32").setStopping(StoppingCondition.newBuilder().setMaxSteps(20)))
          .build();
      agent.tell(new WorkerCommand.StartTask(a, reports.ref()));
      assertTrue(reports.receiveMessage(Duration.ofSeconds(30)).hasStarted());
      TaskReport r;
      do {
        r = reports.receiveMessage(Duration.ofSeconds(60));
      } while (!r.hasCompleted() && !r.hasFailed());
      assertTrue(r.hasCompleted(), r.toString());
      assertEquals(tmp.resolve("artifacts/jobs/job-it/model").toUri().toString(), r.getCompleted().getModelUri());

      // the coordinator leaves; a new one starts on the same address; the worker comes back by itself
      kit.shutdownTestKit();
      coord.getWhenTerminated().toCompletableFuture().join();
      ActorSystem<Void> coord2 = coordinator(port);
      ActorTestKit kit2 = ActorTestKit.create(coord2);
      try {
        ActorRef<WorkerCommand> agent2 = awaitWorker(kit2, Set.of());
        TestProbe<WorkerInfo> info2 = kit2.createTestProbe();
        agent2.tell(new WorkerCommand.DescribeWorker(info2.ref()));
        assertEquals("worker-it", info2.receiveMessage(Duration.ofSeconds(10)).getWorkerId());
      } finally {
        main.shutdown();
        runner.join(30_000);
        assertFalse(runner.isAlive(), "WorkerMain.run returned after shutdown");
        kit2.shutdownTestKit();
      }
    } finally {
      main.shutdown();
      if (!coord.whenTerminated().isCompleted()) kit.shutdownTestKit();
    }
  }
}

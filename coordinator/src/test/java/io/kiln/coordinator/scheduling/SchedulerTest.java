package io.kiln.coordinator.scheduling;

import static org.junit.jupiter.api.Assertions.*;

import com.typesafe.config.ConfigFactory;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.WorkerInfo;
import io.kiln.protocol.proto.WorkerResources;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The scheduler against real (in-JVM) worker actors registered with the real receptionist. */
class SchedulerTest {
  // One actor system per test: the receptionist is per system, and each test wants its own workers.
  ActorTestKit kit;

  @BeforeEach
  void setUp() {
    kit = ActorTestKit.create(ConfigFactory.parseString("pekko.actor.provider = local").withFallback(ConfigFactory.load()));
  }

  @AfterEach
  void tearDown() {
    kit.shutdownTestKit();
  }

  /** A worker agent that describes itself and forwards everything else to a probe. */
  static Behavior<WorkerCommand> worker(String id, int cpus, ActorRef<WorkerCommand> probe) {
    return Behaviors.setup(ctx -> {
      ctx.getSystem().receptionist().tell(Receptionist.register(WorkerCommand.SERVICE_KEY, ctx.getSelf()));
      return Behaviors.receiveMessage(m -> {
        if (m instanceof WorkerCommand.DescribeWorker d) {
          d.replyTo().tell(WorkerInfo.newBuilder().setWorkerId(id).setHost("127.0.0.1")
              .setResources(WorkerResources.newBuilder().setCpus(cpus).setMemoryMb(1024)).build());
        } else {
          probe.tell(m);
        }
        return Behaviors.same();
      });
    });
  }

  @Test
  void queuesUntilAWorkerIsFreeAndFailsJobsOnALostWorker() {
    ActorRef<Scheduler.Command> scheduler = kit.spawn(Scheduler.create());
    TestProbe<WorkerCommand> w1probe = kit.createTestProbe();
    ActorRef<WorkerCommand> w1 = kit.spawn(worker("w1", 1, w1probe.ref()));
    awaitWorkers(scheduler, 1);

    TestProbe<Scheduler.JobNotice> jobA = kit.createTestProbe();
    TestProbe<Scheduler.JobNotice> jobB = kit.createTestProbe();
    scheduler.tell(new Scheduler.RequestPlacement("a", Resources.getDefaultInstance(), jobA.ref()));
    Scheduler.Placed placedA = jobA.expectMessageClass(Scheduler.Placed.class);
    assertEquals("w1", placedA.assignments().get(0).workerId());

    scheduler.tell(new Scheduler.RequestPlacement("b", Resources.getDefaultInstance(), jobB.ref()));
    jobB.expectNoMessage(Duration.ofMillis(300));
    TestProbe<java.util.Optional<String>> reason = kit.createTestProbe();
    scheduler.tell(new Scheduler.GetQueueReason("b", reason.ref()));
    assertTrue(reason.receiveMessage().orElseThrow().contains("waiting for 1 worker(s)"));

    scheduler.tell(new Scheduler.Release("a"));
    assertEquals("w1", jobB.expectMessageClass(Scheduler.Placed.class).assignments().get(0).workerId());

    kit.stop(w1);
    Scheduler.WorkerLost lost = jobB.expectMessageClass(Scheduler.WorkerLost.class, Duration.ofSeconds(5));
    assertEquals("w1", lost.workerId());
    awaitWorkers(scheduler, 0);
  }

  @Test
  void twoRankJobWaitsForTwoWorkers() {
    ActorRef<Scheduler.Command> scheduler = kit.spawn(Scheduler.create());
    TestProbe<Scheduler.JobNotice> job = kit.createTestProbe();
    scheduler.tell(new Scheduler.RequestPlacement("dp", Resources.newBuilder().setWorkers(2).build(), job.ref()));
    kit.spawn(worker("x1", 2, kit.<WorkerCommand>createTestProbe().ref()));
    job.expectNoMessage(Duration.ofMillis(300));
    kit.spawn(worker("x2", 2, kit.<WorkerCommand>createTestProbe().ref()));
    Scheduler.Placed placed = job.expectMessageClass(Scheduler.Placed.class, Duration.ofSeconds(5));
    assertEquals(List.of("x1", "x2"), placed.assignments().stream().map(Scheduler.Assignment::workerId).sorted().toList());
  }

  private void awaitWorkers(ActorRef<Scheduler.Command> scheduler, int n) {
    TestProbe<List<Scheduler.WorkerView>> probe = kit.createTestProbe();
    probe.awaitAssert(Duration.ofSeconds(5), () -> {
      scheduler.tell(new Scheduler.ListWorkers(probe.ref()));
      assertEquals(n, probe.receiveMessage().size());
      return null;
    });
  }
}

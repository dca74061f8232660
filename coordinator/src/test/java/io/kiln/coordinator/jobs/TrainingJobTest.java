package io.kiln.coordinator.jobs;

import static org.junit.jupiter.api.Assertions.*;

import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.scheduling.Scheduler;
import io.kiln.coordinator.telemetry.JobTelemetry;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskCompleted;
import io.kiln.protocol.proto.TaskFailed;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.TaskStarted;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.testkit.javadsl.EventSourcedBehaviorTestKit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The job entity's lifecycle, driven command by command against the persistence test kit. */
class TrainingJobTest {
  // Events go through the real KilnSerializer (protobuf): the kit verifies they round-trip.
  static final ActorTestKit kit = ActorTestKit.create(EventSourcedBehaviorTestKit.config()
      .withFallback(ConfigFactory.parseString("pekko.actor.provider = local"))
      .withFallback(ConfigFactory.load()));

  @TempDir Path dir;
  TestProbe<Scheduler.Command> scheduler;
  TestProbe<WorkerCommand> worker;
  List<JobState> changes;
  EventSourcedBehaviorTestKit<TrainingJob.Command, io.kiln.protocol.proto.JobEvent, JobState> job;
  Scheduler.RequestPlacement placementRequest;

  static final JobSpec SPEC = JobSpec.newBuilder().setName("t").setAlgorithm("mlp")
      .putChannels("train", "/data").build();

  @org.junit.jupiter.api.AfterEach
  void clearJournal() {
    job.clear();
  }

  @BeforeEach
  void setUp() {
    scheduler = kit.createTestProbe();
    worker = kit.createTestProbe();
    changes = new CopyOnWriteArrayList<>();
    TrainingJob.Dependencies deps = new TrainingJob.Dependencies(scheduler.ref(), new JobTelemetry(dir), "file:/artifacts/",
        changes::add, s -> {}, Duration.ofSeconds(10), Duration.ofSeconds(30), Duration.ofSeconds(2));
    job = EventSourcedBehaviorTestKit.create(kit.system(), TrainingJob.create("job-1", deps),
        new EventSourcedBehaviorTestKit.SerializationSettings(true, true, false, true, false));
  }

  @AfterAll
  static void tearDown() {
    kit.shutdownTestKit();
  }

  private WorkerCommand.StartTask submitAndPlace() {
    var r = job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(SPEC, "alice", replyTo));
    assertEquals(JobStatus.Pending, r.state().status());
    assertTrue(r.reply().isSuccess());
    var req = scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    placementRequest = req;
    assertEquals("job-1", req.jobId());
    req.replyTo().tell(new Scheduler.Placed(List.of(new Scheduler.Assignment("worker-1", worker.ref()))));
    WorkerCommand.StartTask start = worker.expectMessageClass(WorkerCommand.StartTask.class);
    assertEquals("job-1-r0", start.assignment().getTaskId());
    assertEquals("file:/artifacts/jobs/job-1/", start.assignment().getJobArtifactsUri());
    assertEquals(JobStatus.Scheduled, job.getState().status());
    // exactly one placement request: a second one would make the scheduler double-book workers
    scheduler.expectNoMessage(Duration.ofMillis(200));
    return start;
  }

  private static TaskReport.Builder report(String kind) {
    return TaskReport.newBuilder().setJobId("job-1").setTaskId("job-1-r0").setWorkerId("worker-1");
  }

  @Test
  void runsToCompletionThroughReports() {
    WorkerCommand.StartTask start = submitAndPlace();
    start.reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    awaitStatus(JobStatus.Running);
    start.reportTo().tell(report("progress").setProgress(Progress.newBuilder().setStep(10).setTotalSteps(10)
        .setEpoch(1).setTotalEpochs(1).setLoss(0.5).setTimestampMs(System.currentTimeMillis())).build());
    start.reportTo().tell(report("ckpt").setCheckpoint(io.kiln.protocol.proto.TaskCheckpoint.newBuilder()
        .setUri("file:/artifacts/jobs/job-1/checkpoints/step-00000010/").setStep(10).setEpoch(1).setEpochEnd(true)).build());
    start.reportTo().tell(report("done").setCompleted(TaskCompleted.newBuilder().setModelUri("file:/artifacts/jobs/job-1/model/")
        .putMetrics("test_accuracy", 0.85)).build());
    awaitStatus(JobStatus.Completed);
    JobState s = job.getState();
    assertEquals(0.85, s.metrics().get("test_accuracy"));
    assertEquals("file:/artifacts/jobs/job-1/model/", s.modelUri());
    assertNotNull(s.lastCheckpoint(), "the epoch-end progress is a journal checkpoint");
    assertEquals("file:/artifacts/jobs/job-1/checkpoints/step-00000010/", s.checkpointUri());
    assertEquals(List.of("Submitted", "Scheduled", "Started", "Checkpoint", "CheckpointCommitted", "Completed"),
        s.history().stream().map(JobState.HistoryEntry::event).toList());
    assertEquals(new Scheduler.Release("job-1"), scheduler.expectMessageClass(Scheduler.Release.class));
    // Recovery replays to the same state.
    job.restart();
    assertEquals(JobStatus.Completed, job.getState().status());
    assertEquals(s.history(), job.getState().history());
  }

  @Test
  void distributedJobFormsItsGroupOnceEveryRankListens() {
    TestProbe<WorkerCommand> worker2 = kit.createTestProbe();
    JobSpec two = SPEC.toBuilder().setResources(io.kiln.protocol.proto.Resources.newBuilder().setWorkers(2)).build();
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(two, "alice", replyTo));
    var req = scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    req.replyTo().tell(new Scheduler.Placed(List.of(new Scheduler.Assignment("worker-1", worker.ref()),
        new Scheduler.Assignment("worker-2", worker2.ref()))));
    var s0 = worker.expectMessageClass(WorkerCommand.StartTask.class);
    var s1 = worker2.expectMessageClass(WorkerCommand.StartTask.class);
    assertEquals(1, s1.assignment().getRank());
    assertEquals(2, s1.assignment().getWorldSize());
    // rank 1 first: nothing happens until rank 0 is there too
    s1.reportTo().tell(TaskReport.newBuilder().setJobId("job-1").setTaskId("job-1-r1").setWorkerId("worker-2")
        .setRendezvous(io.kiln.protocol.proto.TaskRendezvous.newBuilder().setRank(1).setDataAddress("127.0.0.1:2002").setBackend("ring")).build());
    worker2.expectNoMessage(Duration.ofMillis(200));
    s0.reportTo().tell(TaskReport.newBuilder().setJobId("job-1").setTaskId("job-1-r0").setWorkerId("worker-1")
        .setRendezvous(io.kiln.protocol.proto.TaskRendezvous.newBuilder().setRank(0).setDataAddress("127.0.0.1:2001").setBackend("nccl")).build());
    var g0 = worker.expectMessageClass(WorkerCommand.FormGroup.class);
    var g1 = worker2.expectMessageClass(WorkerCommand.FormGroup.class);
    assertEquals("job-1-r0", g0.taskId());
    assertEquals("job-1-r1", g1.taskId());
    assertEquals(List.of("127.0.0.1:2001", "127.0.0.1:2002"), g1.group().getDataAddressesList());
    assertEquals("ring", g1.group().getBackend(), "mixed backends fall back to the ring");
    assertEquals(1, g1.group().getGeneration());
    assertEquals(1, job.getState().generation());
    assertEquals("GroupFormed", job.getState().history().get(job.getState().history().size() - 1).event());
  }

  @Test
  void aTaskThatNeverStartsFailsTheJob() {
    submitAndPlace();
    awaitStatus(JobStatus.Failed);
    assertTrue(job.getState().failureReason().startsWith("no worker reported the task started within 2 s"),
        job.getState().failureReason());
  }

  @Test
  void taskFailureFailsTheJobWithTheReason() {
    WorkerCommand.StartTask start = submitAndPlace();
    start.reportTo().tell(report("f").setFailed(TaskFailed.newBuilder().setReason("cannot read /data/train-images-idx3-ubyte.gz")).build());
    awaitStatus(JobStatus.Failed);
    assertTrue(job.getState().failureReason().contains("cannot read /data/train-images-idx3-ubyte.gz"), job.getState().failureReason());
    scheduler.expectMessageClass(Scheduler.Release.class);
  }

  @Test
  void lostWorkerFailsTheJob() {
    WorkerCommand.StartTask start = submitAndPlace();
    start.reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    awaitStatus(JobStatus.Running);
    placementRequest.replyTo().tell(new Scheduler.WorkerLost("worker-1", "worker worker-1 left the cluster"));
    awaitStatus(JobStatus.Failed);
    assertTrue(job.getState().failureReason().startsWith("worker worker-1 left the cluster"), job.getState().failureReason());
    scheduler.expectMessageClass(Scheduler.Release.class);
  }

  @Test
  void stopWhileRunningAsksTheWorkerAndEndsStopped() {
    WorkerCommand.StartTask start = submitAndPlace();
    var r = job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Stop("", replyTo));
    assertEquals(JobStatus.Stopping, r.state().status());
    WorkerCommand.StopTask stop = worker.expectMessageClass(WorkerCommand.StopTask.class);
    assertEquals("job-1-r0", stop.taskId());
    start.reportTo().tell(report("f").setFailed(TaskFailed.newBuilder().setReason("stopped: stopped by user")).build());
    awaitStatus(JobStatus.Stopped);
    var again = job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Stop("", replyTo));
    assertTrue(again.reply().isError(), "stopping a finished job is refused");
  }

  @Test
  void stopWhilePendingStopsAtOnce() {
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(SPEC, "alice", replyTo));
    scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    var r = job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Stop("no longer needed", replyTo));
    assertEquals(JobStatus.Stopped, r.state().status());
    assertEquals("no longer needed", r.state().stopReason());
  }

  @Test
  void aRunningJobRecoveredAfterACoordinatorCrashFailsWithAClearReason() {
    submitAndPlace();
    job.restart();
    awaitStatus(JobStatus.Failed);
    assertTrue(job.getState().failureReason().contains("coordinator restarted"), job.getState().failureReason());
  }

  @Test
  void aPendingJobRecoveredAsksForPlacementAgain() {
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(SPEC, "alice", replyTo));
    scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    job.restart();
    assertEquals("job-1", scheduler.expectMessageClass(Scheduler.RequestPlacement.class).jobId());
    assertEquals(JobStatus.Pending, job.getState().status());
  }

  @Test
  void duplicateSubmitIsRefused() {
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(SPEC, "alice", replyTo));
    var r = job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(SPEC, "bob", replyTo));
    assertTrue(r.reply().isError());
    assertEquals("alice", job.getState().submittedBy());
  }

  private void awaitStatus(JobStatus expected) {
    long deadline = System.currentTimeMillis() + 5000;
    while (job.getState().status() != expected && System.currentTimeMillis() < deadline) {
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        throw new RuntimeException(e);
      }
    }
    assertEquals(expected, job.getState().status());
  }
}

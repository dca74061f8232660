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
        changes::add, s -> {}, Duration.ofSeconds(10), Duration.ofSeconds(30), Duration.ofSeconds(2),
        new TrainingJob.ElasticSettings(Duration.ofSeconds(10), Duration.ofSeconds(60), 3, Duration.ofSeconds(2)));
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
  void aLostSingleRankJobGoesBackToTheQueueToResumeFromItsCheckpoint() {
    WorkerCommand.StartTask start = submitAndPlace();
    start.reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    awaitStatus(JobStatus.Running);
    start.reportTo().tell(report("ckpt").setCheckpoint(io.kiln.protocol.proto.TaskCheckpoint.newBuilder()
        .setUri("file:/artifacts/jobs/job-1/checkpoints/step-00000020/").setStep(20).setEpoch(1)).build());
    placementRequest.replyTo().tell(new Scheduler.WorkerLost("worker-1", "worker worker-1 left the cluster"));
    awaitStatus(JobStatus.Pending);
    scheduler.expectMessageClass(Scheduler.Release.class);
    var again = scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    JobState s = job.getState();
    assertEquals(1, s.restarts());
    JobState.HistoryEntry restarted = s.history().get(s.history().size() - 1);
    assertEquals("Restarted", restarted.event());
    assertTrue(restarted.detail().contains("left the cluster") && restarted.detail().contains("step-00000020"), restarted.detail());
    // placed again: a new task resumes from the checkpoint
    TestProbe<WorkerCommand> worker2 = kit.createTestProbe();
    again.replyTo().tell(new Scheduler.Placed(List.of(new Scheduler.Assignment("worker-2", worker2.ref()))));
    var start2 = worker2.expectMessageClass(WorkerCommand.StartTask.class);
    assertEquals("job-1-r1", start2.assignment().getTaskId(), "task ids are never reused");
    assertEquals("file:/artifacts/jobs/job-1/checkpoints/step-00000020/",
        start2.assignment().getSpec().getCheckpoint().getResumeFrom());
  }

  /**
   * Training is over on every rank and rank 0 (which writes the model) is lost: the finished ranks are
   * no survivors to regroup with, so the job resumes from its checkpoint instead of waiting for them.
   * A finished rank lost afterwards changes nothing.
   */
  @Test
  void aRankLostAfterTheOthersFinishedRestartsFromTheCheckpointAndAFinishedRankLostIsIgnored() {
    JobSpec elastic = SPEC.toBuilder().setResources(io.kiln.protocol.proto.Resources.newBuilder().setWorkers(2)
        .setMinWorkers(2).setMaxWorkers(2)).build();
    List<TestProbe<WorkerCommand>> w = List.of(worker, kit.createTestProbe());
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(elastic, "alice", replyTo));
    var req = scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    req.replyTo().tell(new Scheduler.Placed(List.of(new Scheduler.Assignment("worker-1", w.get(0).ref()),
        new Scheduler.Assignment("worker-2", w.get(1).ref()))));
    List<WorkerCommand.StartTask> starts = w.stream().map(p -> p.expectMessageClass(WorkerCommand.StartTask.class)).toList();
    starts.get(0).reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    for (int r = 0; r < 2; r++) rendezvous(starts.get(r), r, 0, -1, List.of());
    awaitStatus(JobStatus.Running);
    starts.get(0).reportTo().tell(report("ckpt").setCheckpoint(io.kiln.protocol.proto.TaskCheckpoint.newBuilder()
        .setUri("file:/artifacts/jobs/job-1/checkpoints/step-00000300/").setStep(300).setEpoch(1)).build());
    String rank1 = starts.get(1).assignment().getTaskId();
    starts.get(1).reportTo().tell(TaskReport.newBuilder().setJobId("job-1").setTaskId(rank1).setWorkerId("worker-2")
        .setCompleted(io.kiln.protocol.proto.TaskCompleted.newBuilder().setModelUri("")).build());
    // the finished rank's worker goes away: nothing to recover
    req.replyTo().tell(new Scheduler.WorkerLost("worker-2", "worker worker-2 left the cluster"));
    // then rank 0, still writing the model, is lost too
    req.replyTo().tell(new Scheduler.WorkerLost("worker-1", "worker worker-1 left the cluster"));
    awaitStatus(JobStatus.Pending);
    JobState s = job.getState();
    JobState.HistoryEntry restarted = s.history().get(s.history().size() - 1);
    assertEquals("Restarted", restarted.event());
    assertTrue(restarted.detail().contains("worker-1") && restarted.detail().contains("step-00000300"), restarted.detail());
    assertEquals(0, s.history().stream().filter(h -> h.event().equals("MemberLost")).count(), String.valueOf(s.history()));
  }

  /** Three ranks (min 2, max 3): one is lost, the two others continue; a new worker joins. */
  @Test
  void anElasticGroupLosesAMemberContinuesAndTakesANewOne() {
    JobSpec elastic = SPEC.toBuilder().setResources(io.kiln.protocol.proto.Resources.newBuilder().setWorkers(3)
        .setMinWorkers(2).setMaxWorkers(3)).build();
    List<TestProbe<WorkerCommand>> w = List.of(worker, kit.createTestProbe(), kit.createTestProbe());
    job.<StatusReply<JobState>>runCommand(replyTo -> new TrainingJob.Submit(elastic, "alice", replyTo));
    var req = scheduler.expectMessageClass(Scheduler.RequestPlacement.class);
    req.replyTo().tell(new Scheduler.Placed(List.of(new Scheduler.Assignment("worker-1", w.get(0).ref()),
        new Scheduler.Assignment("worker-2", w.get(1).ref()), new Scheduler.Assignment("worker-3", w.get(2).ref()))));
    List<WorkerCommand.StartTask> starts = w.stream().map(p -> p.expectMessageClass(WorkerCommand.StartTask.class)).toList();
    starts.get(0).reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    for (int r = 0; r < 3; r++) rendezvous(starts.get(r), r, 0, -1, List.of());
    for (int r = 0; r < 3; r++) assertEquals(1, w.get(r).expectMessageClass(WorkerCommand.FormGroup.class).group().getGeneration());
    awaitStatus(JobStatus.Running);

    // worker-2 dies: rank 2 sees the broken ring first and blames it; rank 0 is asked to regroup
    rendezvous(starts.get(2), 2, 1, 41, List.of("job-1-r1"));
    var regroup = w.get(0).expectMessageClass(WorkerCommand.RegroupTask.class);
    assertEquals(1, regroup.generation());
    rendezvous(starts.get(0), 0, 1, 40, List.of());
    var g0 = w.get(0).expectMessageClass(WorkerCommand.FormGroup.class).group();
    var g2 = w.get(2).expectMessageClass(WorkerCommand.FormGroup.class).group();
    assertEquals(g0, g2);
    assertEquals(2, g0.getGeneration());
    assertEquals(List.of("job-1-r0", "job-1-r2"), g0.getTaskIdsList());
    assertEquals(1, g0.getSourceRank(), "the rank with the most completed steps is the source");
    assertEquals(new Scheduler.ReleaseWorker("job-1", "worker-2", true), scheduler.expectMessageClass(Scheduler.ReleaseWorker.class));
    assertEquals(new Scheduler.WantMore("job-1"), scheduler.expectMessageClass(Scheduler.WantMore.class));
    JobState s = job.getState();
    assertEquals(List.of("worker-1", "worker-3"), s.workerIds());
    assertTrue(s.history().stream().anyMatch(h -> h.event().equals("MemberLeft") && h.detail().contains("worker-2")
        && h.detail().contains("at step 41")), String.valueOf(s.history()));
    assertTrue(s.history().get(s.history().size() - 1).detail().contains("continuing at step 41"), String.valueOf(s.history()));

    // a new worker is offered: a new rank starts, and the group takes it at the next step boundary
    TestProbe<WorkerCommand> w4 = kit.createTestProbe();
    req.replyTo().tell(new Scheduler.Grown(new Scheduler.Assignment("worker-4", w4.ref())));
    var start4 = w4.expectMessageClass(WorkerCommand.StartTask.class);
    assertEquals("job-1-r3", start4.assignment().getTaskId());
    rendezvous(start4, 2, 0, -1, List.of());
    assertEquals(2, w.get(0).expectMessageClass(WorkerCommand.RegroupTask.class).generation());
    assertEquals(2, w.get(2).expectMessageClass(WorkerCommand.RegroupTask.class).generation());
    rendezvous(starts.get(0), 0, 2, 60, List.of());
    rendezvous(starts.get(2), 1, 2, 60, List.of());
    var g3 = w4.expectMessageClass(WorkerCommand.FormGroup.class).group();
    assertEquals(3, g3.getGeneration());
    assertEquals(List.of("job-1-r0", "job-1-r2", "job-1-r3"), g3.getTaskIdsList());
    assertEquals(0, g3.getSourceRank());
    // replay gives the same history (the recovered job then goes back to the queue: a coordinator restart)
    JobState live = job.getState();
    job.restart();
    assertEquals(live.history(), job.getState().history().subList(0, live.history().size()));
  }

  private static void rendezvous(WorkerCommand.StartTask start, int rank, int fromGeneration, long step,
      List<String> suspects) {
    String task = start.assignment().getTaskId();
    start.reportTo().tell(TaskReport.newBuilder().setJobId("job-1").setTaskId(task).setWorkerId("w")
        .setRendezvous(io.kiln.protocol.proto.TaskRendezvous.newBuilder().setRank(rank).setTaskId(task)
            .setDataAddress("127.0.0.1:" + (3000 + rank)).setBackend("ring").setFromGeneration(fromGeneration)
            .setCompletedStep(step).addAllSuspectTaskIds(suspects).setReason("peer closed")).build());
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

  /** Its task kept running on the worker: the recovered job re-attaches it and carries on. */
  @Test
  void aRunningJobRecoveredAfterACoordinatorCrashReattachesItsTasks() {
    WorkerCommand.StartTask start = submitAndPlace();
    start.reportTo().tell(report("started").setStarted(TaskStarted.getDefaultInstance()).build());
    awaitStatus(JobStatus.Running);
    job.restart();
    var reserve = scheduler.expectMessageClass(Scheduler.Reserve.class);
    assertEquals(List.of("worker-1"), reserve.workerIds());
    job.runCommand(new TrainingJob.Adopt("job-1-r0", "worker-1", worker.ref()));
    var attach = worker.expectMessageClass(WorkerCommand.AttachTask.class);
    assertEquals("job-1-r0", attach.taskId());
    // its held reports arrive through the new reference: the job completes
    attach.reportTo().tell(report("done").setCompleted(TaskCompleted.newBuilder().setModelUri("file:/m/")).build());
    awaitStatus(JobStatus.Completed);
    List<String> events = job.getState().history().stream().map(JobState.HistoryEntry::event).toList();
    assertTrue(events.contains("Reattached") && !events.contains("Restarted"), events.toString());
  }

  /** Nothing reported back (the workers died with it): back to the queue to resume from the checkpoint. */
  @Test
  void aRunningJobWhoseTasksDoNotReportBackResumesFromTheQueue() {
    submitAndPlace();
    job.restart();
    scheduler.expectMessageClass(Scheduler.Reserve.class);
    awaitStatus(JobStatus.Pending);
    scheduler.expectMessageClass(Scheduler.Release.class);
    assertEquals("job-1", scheduler.expectMessageClass(Scheduler.RequestPlacement.class).jobId());
    JobState.HistoryEntry last = job.getState().history().get(job.getState().history().size() - 1);
    assertTrue(last.event().equals("Restarted") && last.detail().contains("0 of 1 task(s) reported back"), last.toString());
  }

  /** A task found on a worker that is not (or no longer) the job's is stopped. */
  @Test
  void aStrangeTaskIsStopped() {
    submitAndPlace();
    job.runCommand(new TrainingJob.Adopt("job-1-r7", "worker-9", worker.ref()));
    assertEquals("job-1-r7", worker.expectMessageClass(WorkerCommand.StopTask.class).taskId());
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

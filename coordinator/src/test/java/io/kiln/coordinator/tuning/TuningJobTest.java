package io.kiln.coordinator.tuning;

import static org.junit.jupiter.api.Assertions.*;

import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.jobs.JobManager;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.ParameterRangeSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TrialCreated;
import io.kiln.protocol.proto.TuningEarlyStopping;
import io.kiln.protocol.proto.TuningEvent;
import io.kiln.protocol.proto.TuningObjective;
import io.kiln.protocol.proto.TuningSpec;
import io.kiln.protocol.proto.TuningSubmitted;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.testkit.javadsl.EventSourcedBehaviorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The tuning job entity against the persistence test kit, its events through the protobuf serializer. */
class TuningJobTest {
  static final ActorTestKit kit = ActorTestKit.create(EventSourcedBehaviorTestKit.config()
      .withFallback(ConfigFactory.parseString("pekko.actor.provider = local"))
      .withFallback(ConfigFactory.load()));

  static final TuningSpec SPEC = TuningSpec.newBuilder().setName("tune").setStrategy("random").setSeed(5)
      .setObjective(TuningObjective.newBuilder().setMetric("test_accuracy").setType("Maximize"))
      .addParameters(ParameterRangeSpec.newBuilder().setName("learning_rate").setType("continuous").setMin(1e-3).setMax(0.5).setScale("log"))
      .setMaxTrials(4).setMaxParallelTrials(2)
      .setTrainingJob(JobSpec.newBuilder().setName("tune").setAlgorithm("mlp").putChannels("train", "/data").putHyperparameters("epochs", "2"))
      .build();

  ScriptedJobManager jobs;
  Map<String, Progress> progress;
  EventSourcedBehaviorTestKit<TuningJob.Command, TuningEvent, TuningState> tuning;

  @BeforeEach
  void setUp() {
    jobs = new ScriptedJobManager();
    progress = new ConcurrentHashMap<>();
    ActorRef<JobManager.Command> jm = kit.spawn(jobs.behavior());
    TuningJob.Dependencies deps = new TuningJob.Dependencies(jm, progress::get, Duration.ofMillis(50), Duration.ofSeconds(3),
        s -> {}, s -> {});
    tuning = EventSourcedBehaviorTestKit.create(kit.system(), TuningJob.create("tune-1", deps),
        new EventSourcedBehaviorTestKit.SerializationSettings(true, true, false, true, false));
  }

  @AfterEach
  void clear() {
    tuning.clear();
  }

  @AfterAll
  static void tearDown() {
    kit.shutdownTestKit();
  }

  private void submit(TuningSpec spec) {
    var r = tuning.<StatusReply<TuningState>>runCommand(replyTo -> new TuningJob.Submit(spec, "alice", List.of(), replyTo));
    assertTrue(r.reply().isSuccess());
    assertEquals(TuningStatus.Running, r.state().status());
  }

  private TuningState await(String what, Predicate<TuningState> p) {
    long deadline = System.currentTimeMillis() + 10_000;
    TuningState s = tuning.getState();
    while (!p.test(s)) {
      if (System.currentTimeMillis() > deadline) fail("timed out waiting for " + what + "; state: " + s);
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        throw new AssertionError(e);
      }
      s = tuning.getState();
    }
    return s;
  }

  private void awaitJobs(int n) {
    long deadline = System.currentTimeMillis() + 10_000;
    while (jobs.submitted.size() < n) {
      if (System.currentTimeMillis() > deadline) fail("expected " + n + " submitted jobs, got " + jobs.submitted.size());
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        throw new AssertionError(e);
      }
    }
  }

  @Test
  void runsTrialsInParallelUpToTheLimitAndRanksThemByTheObjective() throws Exception {
    submit(SPEC);
    awaitJobs(2);
    Thread.sleep(300);
    assertEquals(2, jobs.submitted.size(), "never more than maxParallelTrials at once");
    TuningState s = await("two trials with jobs", st -> st.trials().values().stream().filter(t -> !t.jobId().isEmpty()).count() == 2);
    assertEquals("tune-t001", jobs.jobs.get(s.trial("t001").jobId()).spec().getName());
    assertEquals(s.trial("t001").hyperparameters().get("learning_rate"), jobs.hp(s.trial("t001").jobId(), "learning_rate"));
    assertEquals("2", jobs.hp(s.trial("t001").jobId(), "epochs"), "the template's other hyperparameters stay");
    assertTrue(jobs.submittedBy.get(0).startsWith("alice (tuning job tune-1 trial t001"));
    jobs.complete("job-1", Map.of("test_accuracy", 0.70));
    awaitJobs(3);
    jobs.complete("job-2", Map.of("test_accuracy", 0.90));
    awaitJobs(4);
    jobs.complete("job-3", Map.of("test_accuracy", 0.80));
    jobs.complete("job-4", Map.of("test_accuracy", 0.60));
    s = await("the end", st -> st.status() == TuningStatus.Completed);
    assertEquals(4, jobs.submitted.size());
    assertEquals(List.of(0.90, 0.80, 0.70, 0.60), s.leaderboard().stream().map(TrialState::objective).toList());
    assertEquals("all 4 trials finished", s.endReason());
    tuning.restart();
    assertEquals(s.leaderboard(), tuning.getState().leaderboard(), "replays to the same leaderboard");
  }

  @Test
  void restartKeepsFinishedTrialsAndRerunsOnlyTheOnesTheRestartAbandoned() {
    submit(SPEC);
    awaitJobs(2);
    await("jobs assigned", st -> st.trials().values().stream().filter(t -> !t.jobId().isEmpty()).count() == 2);
    jobs.complete("job-1", Map.of("test_accuracy", 0.75));
    awaitJobs(3);
    TuningState before = await("t001 finished, t003 assigned", st -> st.trial("t001").hasObjective()
        && st.trials().containsKey("t003") && !st.trial("t003").jobId().isEmpty());
    // the coordinator goes down: its running jobs fail as TrainingJob's recovery fails them
    tuning.restart();
    jobs.fail("job-2", "the coordinator restarted while this job was running on worker-1; its tasks were abandoned");
    jobs.fail("job-3", "the coordinator restarted while this job was running on worker-2; its tasks were abandoned");
    awaitJobs(5);
    TuningState s = await("both retried", st -> st.trial("t002").attempts() == 2 && st.trial("t003").attempts() == 2
        && !st.trial("t002").jobId().isEmpty() && !st.trial("t003").jobId().isEmpty());
    assertEquals(0.75, s.trial("t001").objective());
    assertEquals(before.trial("t002").hyperparameters(), s.trial("t002").hyperparameters(), "a retry runs the same trial");
    long t001Submissions = jobs.submittedBy.stream().filter(b -> b.contains("trial t001")).count();
    assertEquals(1, t001Submissions, "the finished trial is not run again");
    assertEquals(5, jobs.submitted.size());
  }

  @Test
  void aTrialWhoseJobWasSubmittedJustBeforeACrashIsAdoptedNotSubmittedAgain() {
    // the journal says t001 was created; the job manager has its job (submitted before the crash)
    ActorRef<JobManager.Command> jm = kit.spawn(jobs.behavior());
    var reply = kit.<StatusReply<io.kiln.coordinator.jobs.JobState>>createTestProbe();
    JobSpec trialSpec = SPEC.getTrainingJob().toBuilder().setName("tune-t001").putHyperparameters("learning_rate", "0.01").build();
    jm.tell(new JobManager.Submit(trialSpec, "alice (tuning job tune-1 trial t001 attempt 1)", reply.ref()));
    reply.receiveMessage();
    tuning.initialize(
        TuningEvent.newBuilder().setTuningJobId("tune-1").setTimestampMs(1).setSubmitted(TuningSubmitted.newBuilder()
            .setSpec(SPEC.toBuilder().setMaxTrials(1)).setSubmittedBy("alice")).build(),
        TuningEvent.newBuilder().setTuningJobId("tune-1").setTimestampMs(2).setTrialCreated(TrialCreated.newBuilder()
            .setTrialId("t001").putHyperparameters("learning_rate", "0.01")).build());
    tuning.restart();
    TuningState s = await("t001 adopted", st -> st.trial("t001").jobId().equals("job-1"));
    jobs.complete("job-1", Map.of("test_accuracy", 0.5));
    s = await("the end", st -> st.status() == TuningStatus.Completed);
    assertEquals(1, jobs.submitted.size(), "no second job for t001");
    assertEquals(0.5, s.trial("t001").objective());
  }

  @Test
  void aTrialWithoutTheObjectiveMetricFailsNamingIt() {
    submit(SPEC.toBuilder().setMaxTrials(1).setMaxParallelTrials(1).build());
    awaitJobs(1);
    await("assigned", st -> !st.trial("t001").jobId().isEmpty());
    jobs.complete("job-1", Map.of("train_loss", 0.3));
    TuningState s = await("the end", st -> st.status() == TuningStatus.Completed);
    assertEquals(TrialState.Status.Failed, s.trial("t001").status());
    assertTrue(s.trial("t001").reason().contains("did not report the objective metric 'test_accuracy' (it reported: train_loss)"),
        s.trial("t001").reason());
  }

  @Test
  void theMedianRuleStopsATrialBehindTheOthers() {
    TuningSpec spec = SPEC.toBuilder().setMaxTrials(2).setMaxParallelTrials(1)
        .setEarlyStopping(TuningEarlyStopping.newBuilder().setType("median").setMinTrials(1).setMinEpochs(1)).build();
    submit(spec);
    awaitJobs(1);
    await("assigned", st -> !st.trial("t001").jobId().isEmpty());
    progress.put("job-1", Progress.newBuilder().setEpoch(1).setTotalEpochs(2).setStep(10).setTotalSteps(20).setLoss(0.5)
        .setTimestampMs(System.currentTimeMillis()).build());
    // the poll that sees the job completed reads its progress first: no waiting needed for the curve
    jobs.complete("job-1", Map.of("test_accuracy", 0.8));
    awaitJobs(2);
    TuningState s = await("t001 done", st -> st.trial("t001").hasObjective());
    assertEquals(List.of(0.5), s.trial("t001").curve(), "the intermediate curve is journaled with the result");
    progress.put("job-2", Progress.newBuilder().setEpoch(1).setTotalEpochs(2).setStep(10).setTotalSteps(20).setLoss(2.0)
        .setTimestampMs(System.currentTimeMillis()).build());
    s = await("t002 early-stopped", st -> st.trials().containsKey("t002") && st.trial("t002").status() == TrialState.Status.EarlyStopped);
    assertTrue(jobs.stopped.contains("job-2"), "its job is stopped");
    assertTrue(s.trial("t002").reason().contains("median rule"));
    await("the end", st -> st.status() == TuningStatus.Completed);
  }

  @Test
  void aJobSubmittedForATrialThatAStopEndedIsStoppedToo() {
    jobs.hold = true;
    submit(SPEC.toBuilder().setMaxParallelTrials(1).build());
    await("t001 created", st -> st.trials().containsKey("t001"));
    var r = tuning.<StatusReply<TuningState>>runCommand(replyTo -> new TuningJob.Stop("", replyTo));
    assertTrue(r.reply().isSuccess());
    assertEquals(TrialState.Status.Stopped, tuning.getState().trial("t001").status());
    await("stopped", st -> st.status() == TuningStatus.Stopped);
    jobs.release();
    awaitJobs(1);
    long deadline = System.currentTimeMillis() + 10_000;
    while (!jobs.stopped.contains("job-1") && System.currentTimeMillis() < deadline) Thread.onSpinWait();
    assertTrue(jobs.stopped.contains("job-1"), "the late job is stopped");
  }

  @Test
  void stoppingStopsTheRunningTrialsJobs() {
    submit(SPEC);
    awaitJobs(2);
    await("assigned", st -> st.trials().values().stream().filter(t -> !t.jobId().isEmpty()).count() == 2);
    var r = tuning.<StatusReply<TuningState>>runCommand(replyTo -> new TuningJob.Stop("", replyTo));
    assertTrue(r.reply().isSuccess());
    TuningState s = await("stopped", st -> st.status() == TuningStatus.Stopped);
    assertEquals(List.of("job-1", "job-2"), jobs.stopped.stream().sorted().toList());
    assertTrue(s.trials().values().stream().allMatch(t -> t.status() == TrialState.Status.Stopped));
    assertEquals(2, jobs.submitted.size(), "no trial starts after the stop");
    var again = tuning.<StatusReply<TuningState>>runCommand(replyTo -> new TuningJob.Stop("", replyTo));
    assertTrue(again.reply().getError().getMessage().contains("already ended"));
  }
}

package io.kiln.coordinator.jobs;

import io.kiln.coordinator.scheduling.Scheduler;
import io.kiln.coordinator.telemetry.JobTelemetry;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.JobCheckpointCommitted;
import io.kiln.protocol.proto.JobCompleted;
import io.kiln.protocol.proto.JobEvent;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobFailed;
import io.kiln.protocol.proto.JobGroupFormed;
import io.kiln.protocol.proto.JobProgressCheckpointed;
import io.kiln.protocol.proto.JobScheduled;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.JobStarted;
import io.kiln.protocol.proto.JobStopRequested;
import io.kiln.protocol.proto.JobStopped;
import io.kiln.protocol.proto.JobSubmitted;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.protocol.proto.TaskReport;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandlerWithReply;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehaviorWithEnforcedReplies;
import org.apache.pekko.persistence.typed.javadsl.ReplyEffect;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * One training job, event-sourced: its lifecycle from submission to a final state. The journal
 * holds every decision (scheduled where, started, progress checkpoints, how it ended) so that a
 * restarted coordinator knows each job exactly as before.
 *
 * <p>Talks to the scheduler for workers, to worker agents to start and stop ranks, and hears from
 * the ranks through {@link TaskReport}s. Live telemetry goes to {@link JobTelemetry}, not the journal.
 */
public final class TrainingJob
    extends EventSourcedBehaviorWithEnforcedReplies<TrainingJob.Command, JobEvent, JobState> {

  public static final String ENTITY_TYPE = "TrainingJob";

  public sealed interface Command {}

  public record Submit(JobSpec spec, String submittedBy, ActorRef<StatusReply<JobState>> replyTo) implements Command {}

  public record Get(ActorRef<JobState> replyTo) implements Command {}

  public record Stop(String reason, ActorRef<StatusReply<JobState>> replyTo) implements Command {}

  private record ReportReceived(TaskReport report) implements Command {}

  private record NoticeReceived(Scheduler.JobNotice notice) implements Command {}

  /** Sent to itself after recovery: finish what a crash interrupted. */
  private enum Reconcile implements Command { INSTANCE }

  private enum StopTimedOut implements Command { INSTANCE }

  /** The placed workers did not report the task started in time (e.g. the StartTask was lost). */
  private enum StartTimedOut implements Command { INSTANCE }

  /** What a job entity needs from its surroundings. */
  public record Dependencies(ActorRef<Scheduler.Command> scheduler, JobTelemetry telemetry, String artifactsRoot,
                             Consumer<JobState> onChange, Consumer<JobState> onRecovered,
                             Duration checkpointInterval, Duration stopTimeout, Duration startTimeout) {}

  public static Behavior<Command> create(String jobId, Dependencies deps) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new TrainingJob(jobId, deps, ctx, timers)));
  }

  public static PersistenceId persistenceId(String jobId) {
    return PersistenceId.of(ENTITY_TYPE, jobId);
  }

  private final String jobId;
  private final Dependencies deps;
  private final ActorContext<Command> ctx;
  private final TimerScheduler<Command> timers;
  private final ActorRef<TaskReport> reportAdapter;
  private final ActorRef<Scheduler.JobNotice> noticeAdapter;
  /** Worker agents of the current placement; not persisted (refs die with the coordinator). */
  private final Map<String, ActorRef<WorkerCommand>> workerRefs = new HashMap<>();
  /** Ranks of a distributed job that are listening on their data plane, by rank. */
  private final Map<Integer, TaskRendezvous> rendezvous = new HashMap<>();

  private TrainingJob(String jobId, Dependencies deps, ActorContext<Command> ctx, TimerScheduler<Command> timers) {
    super(persistenceId(jobId));
    this.jobId = jobId;
    this.deps = deps;
    this.ctx = ctx;
    this.timers = timers;
    this.reportAdapter = ctx.messageAdapter(TaskReport.class, ReportReceived::new);
    this.noticeAdapter = ctx.messageAdapter(Scheduler.JobNotice.class, NoticeReceived::new);
  }

  @Override
  public JobState emptyState() {
    return JobState.empty(jobId);
  }

  @Override
  public EventHandler<JobState, JobEvent> eventHandler() {
    return newEventHandlerBuilder().forAnyState().onAnyEvent(JobState::apply);
  }

  @Override
  public SignalHandler<JobState> signalHandler() {
    return newSignalHandlerBuilder()
        .onSignal(RecoveryCompleted.instance(), state -> {
          deps.onRecovered().accept(state);
          // Only a job that existed before this incarnation has unfinished business; a new one
          // (about to be submitted) must not ask for workers twice.
          if (state.status() != JobStatus.New) ctx.getSelf().tell(Reconcile.INSTANCE);
        })
        .build();
  }

  @Override
  public CommandHandlerWithReply<Command, JobEvent, JobState> commandHandler() {
    return newCommandHandlerWithReplyBuilder().forAnyState()
        .onCommand(Submit.class, this::onSubmit)
        .onCommand(Get.class, (s, c) -> Effect().reply(c.replyTo(), s))
        .onCommand(Stop.class, this::onStop)
        .onCommand(ReportReceived.class, this::onReport)
        .onCommand(NoticeReceived.class, this::onNotice)
        .onCommand(Reconcile.class, this::onReconcile)
        .onCommand(StopTimedOut.class, this::onStopTimedOut)
        .onCommand(StartTimedOut.class, (s, c) -> s.status() == JobStatus.Scheduled
            ? fail("no worker reported the task started within " + deps.startTimeout().toSeconds() + " s of scheduling on "
                + String.join(", ", s.workerIds()))
            : Effect().noReply())
        .build();
  }

  private ReplyEffect<JobEvent, JobState> onSubmit(JobState s, Submit c) {
    if (s.status() != JobStatus.New) {
      return Effect().reply(c.replyTo(), StatusReply.error("job " + jobId + " already exists"));
    }
    JobEvent e = event().setSubmitted(JobSubmitted.newBuilder().setSpec(c.spec()).setSubmittedBy(c.submittedBy())).build();
    return Effect().persist(e)
        .thenRun(ns -> {
          deps.telemetry().controlLog(jobId, "INFO", "job submitted by " + c.submittedBy() + ": algorithm "
              + ns.spec().getAlgorithm() + ", " + Math.max(1, ns.spec().getResources().getWorkers()) + " worker(s)");
          changed(ns);
          requestPlacement(ns);
        })
        .thenReply(c.replyTo(), StatusReply::success);
  }

  private ReplyEffect<JobEvent, JobState> onStop(JobState s, Stop c) {
    String reason = c.reason().isBlank() ? "stopped by user" : c.reason();
    switch (s.status()) {
      case New:
        return Effect().reply(c.replyTo(), StatusReply.error("no job " + jobId));
      case Completed:
      case Failed:
      case Stopped:
        return Effect().reply(c.replyTo(), StatusReply.error("job " + jobId + " has already ended: " + s.status()));
      case Stopping:
        return Effect().reply(c.replyTo(), StatusReply.success(s));
      case Pending:
        return Effect().persist(List.of(
                event().setStopRequested(JobStopRequested.newBuilder().setReason(reason)).build(),
                event().setStopped(JobStopped.newBuilder().setReason(reason)).build()))
            .thenRun(this::ended)
            .thenReply(c.replyTo(), StatusReply::success);
      default:
        return Effect().persist(event().setStopRequested(JobStopRequested.newBuilder().setReason(reason)).build())
            .thenRun(ns -> {
              changed(ns);
              stopTasks(ns, reason);
              timers.startSingleTimer(StopTimedOut.INSTANCE, deps.stopTimeout());
            })
            .thenReply(c.replyTo(), StatusReply::success);
    }
  }

  private ReplyEffect<JobEvent, JobState> onReport(JobState s, ReportReceived c) {
    TaskReport r = c.report();
    if (r.getKindCase() == TaskReport.KindCase.LOGS) {
      deps.telemetry().logs(jobId, r.getWorkerId(), r.getLogs().getLinesList());
      return Effect().noReply();
    }
    if (s.status().isFinal() || s.status() == JobStatus.New || !s.taskIds().contains(r.getTaskId())) {
      return Effect().noReply(); // late news from a task this job no longer waits for
    }
    switch (r.getKindCase()) {
      case STARTED:
        if (s.status() != JobStatus.Scheduled) return Effect().noReply();
        return Effect().persist(event().setStarted(JobStarted.getDefaultInstance()).build())
            .thenRun(ns -> {
              timers.cancel(StartTimedOut.INSTANCE);
              changed(ns);
            }).thenNoReply();
      case PROGRESS:
        return onProgress(s, r.getProgress());
      case RENDEZVOUS:
        return onRendezvous(s, r.getRendezvous());
      case CHECKPOINT:
        return Effect().persist(event().setCheckpointCommitted(JobCheckpointCommitted.newBuilder()
            .setCheckpoint(r.getCheckpoint())).build()).thenNoReply();
      case COMPLETED:
        if (s.status() == JobStatus.Stopping) return stopped(s, "stopped by user after training finished");
        // Rank 0 evaluates and writes the model; the other ranks' completions carry no new result.
        if (!r.getTaskId().equals(s.taskIds().get(0))) return Effect().noReply();
        return Effect().persist(event().setCompleted(JobCompleted.newBuilder()
                .setModelUri(r.getCompleted().getModelUri()).putAllMetrics(r.getCompleted().getMetricsMap())).build())
            .thenRun(this::ended).thenNoReply();
      case FAILED:
        if (s.status() == JobStatus.Stopping) return stopped(s, s.stopReason());
        return fail("task " + r.getTaskId() + " on " + r.getWorkerId() + " failed: " + r.getFailed().getReason());
      default:
        return Effect().noReply();
    }
  }

  private ReplyEffect<JobEvent, JobState> onProgress(JobState s, Progress p) {
    deps.telemetry().progress(jobId, p);
    long stepsPerEpoch = p.getTotalEpochs() > 0 ? p.getTotalSteps() / p.getTotalEpochs() : 0;
    boolean epochEnd = stepsPerEpoch > 0 && p.getStep() > 0 && p.getStep() % stepsPerEpoch == 0;
    boolean due = p.getTimestampMs() - s.lastCheckpointAt() >= deps.checkpointInterval().toMillis();
    if (!epochEnd && !due) return Effect().noReply();
    if (s.lastCheckpoint() != null && s.lastCheckpoint().getStep() == p.getStep()) return Effect().noReply();
    return Effect().persist(event().setProgress(JobProgressCheckpointed.newBuilder().setProgress(p).setEpochEnd(epochEnd)).build())
        .thenNoReply();
  }

  /** Once every rank listens on its data plane, the group is formed and each rank told its peers. */
  private ReplyEffect<JobEvent, JobState> onRendezvous(JobState s, TaskRendezvous r) {
    if (s.status() != JobStatus.Scheduled && s.status() != JobStatus.Running) return Effect().noReply();
    rendezvous.put(r.getRank(), r);
    int world = s.taskIds().size();
    if (rendezvous.size() < world) return Effect().noReply();
    // Every rank must use the same backend: NCCL only when all ranks could load it.
    boolean allNccl = rendezvous.values().stream().allMatch(x -> x.getBackend().equals("nccl"));
    GroupSpec.Builder g = GroupSpec.newBuilder().setGeneration(s.generation() + 1).setBackend(allNccl ? "nccl" : "ring");
    for (int rank = 0; rank < world; rank++) g.addDataAddresses(rendezvous.get(rank).getDataAddress());
    if (allNccl) g.setNcclUniqueId(rendezvous.get(0).getNcclUniqueId());
    GroupSpec group = g.build();
    rendezvous.clear();
    return Effect().persist(event().setGroupFormed(JobGroupFormed.newBuilder().setGroup(group).addAllWorkerIds(s.workerIds())).build())
        .thenRun(ns -> {
          for (int rank = 0; rank < world; rank++) {
            ActorRef<WorkerCommand> w = workerRefs.get(ns.workerIds().get(rank));
            if (w != null) w.tell(new WorkerCommand.FormGroup(jobId, ns.taskIds().get(rank), group));
          }
          deps.telemetry().controlLog(jobId, "INFO", "group generation " + group.getGeneration() + " formed: "
              + world + " ranks, " + group.getBackend() + " backend, " + String.join(" ", group.getDataAddressesList()));
        })
        .thenNoReply();
  }

  private ReplyEffect<JobEvent, JobState> onNotice(JobState s, NoticeReceived c) {
    if (c.notice() instanceof Scheduler.Placed placed) {
      if (s.status() != JobStatus.Pending) {
        // Stopped while queued: give the workers back. Already placed: a duplicate answer, ignore.
        if (s.status().isFinal()) deps.scheduler().tell(new Scheduler.Release(jobId));
        return Effect().noReply();
      }
      List<String> workerIds = new ArrayList<>();
      List<String> taskIds = new ArrayList<>();
      for (int rank = 0; rank < placed.assignments().size(); rank++) {
        workerIds.add(placed.assignments().get(rank).workerId());
        taskIds.add(jobId + "-r" + rank);
      }
      return Effect().persist(event().setScheduled(JobScheduled.newBuilder().addAllWorkerIds(workerIds).addAllTaskIds(taskIds)).build())
          .thenRun(ns -> {
            changed(ns);
            startTasks(ns, placed);
            timers.startSingleTimer(StartTimedOut.INSTANCE, deps.startTimeout());
          })
          .thenNoReply();
    }
    if (c.notice() instanceof Scheduler.WorkerLost lost) {
      if (!s.workerIds().contains(lost.workerId()) || s.status().isFinal() || s.status() == JobStatus.Pending) {
        return Effect().noReply();
      }
      if (s.status() == JobStatus.Stopping) return stopped(s, s.stopReason());
      return fail(lost.reason() + " while running rank(s) of this job");
    }
    return Effect().noReply();
  }

  private ReplyEffect<JobEvent, JobState> onReconcile(JobState s, Reconcile c) {
    switch (s.status()) {
      case Pending:
        requestPlacement(s);
        return Effect().noReply();
      case Scheduled:
      case Running:
        return fail("the coordinator restarted while this job was " + s.status().name().toLowerCase()
            + " on " + String.join(", ", s.workerIds()) + "; its tasks were abandoned");
      case Stopping:
        return stopped(s, s.stopReason());
      default:
        return Effect().noReply();
    }
  }

  private ReplyEffect<JobEvent, JobState> onStopTimedOut(JobState s, StopTimedOut c) {
    if (s.status() != JobStatus.Stopping) return Effect().noReply();
    return stopped(s, s.stopReason() + " (workers did not confirm within " + deps.stopTimeout().toSeconds() + " s)");
  }

  private ReplyEffect<JobEvent, JobState> fail(String reason) {
    return Effect().persist(event().setFailed(JobFailed.newBuilder().setReason(reason)).build())
        .thenRun(ns -> {
          deps.telemetry().controlLog(jobId, "ERROR", "job failed: " + reason);
          stopTasks(ns, "job failed");
          ended(ns);
        })
        .thenNoReply();
  }

  private ReplyEffect<JobEvent, JobState> stopped(JobState s, String reason) {
    return Effect().persist(event().setStopped(JobStopped.newBuilder().setReason(reason)).build())
        .thenRun(this::ended).thenNoReply();
  }

  private void requestPlacement(JobState s) {
    deps.scheduler().tell(new Scheduler.RequestPlacement(jobId, s.spec().getResources(), noticeAdapter));
  }

  private void startTasks(JobState s, Scheduler.Placed placed) {
    int world = placed.assignments().size();
    for (int rank = 0; rank < world; rank++) {
      Scheduler.Assignment a = placed.assignments().get(rank);
      workerRefs.put(a.workerId(), a.worker());
      TaskAssignment task = TaskAssignment.newBuilder()
          .setJobId(jobId).setTaskId(s.taskIds().get(rank)).setRank(rank).setWorldSize(world)
          .setSpec(s.spec()).setJobArtifactsUri(deps.artifactsRoot() + "jobs/" + jobId + "/")
          .build();
      a.worker().tell(new WorkerCommand.StartTask(task, reportAdapter));
    }
    deps.telemetry().controlLog(jobId, "INFO", "scheduled on " + String.join(", ", s.workerIds()));
  }

  private void stopTasks(JobState s, String reason) {
    for (int i = 0; i < s.workerIds().size(); i++) {
      ActorRef<WorkerCommand> w = workerRefs.get(s.workerIds().get(i));
      if (w != null) w.tell(new WorkerCommand.StopTask(jobId, s.taskIds().get(i), reason));
    }
  }

  private void ended(JobState s) {
    timers.cancelAll();
    deps.scheduler().tell(new Scheduler.Release(jobId));
    workerRefs.clear();
    String summary = s.status() == JobStatus.Completed
        ? "job completed: " + s.metrics() + ", model at " + s.modelUri()
        : "job " + s.status().name().toLowerCase() + ": " + (s.status() == JobStatus.Failed ? s.failureReason() : s.stopReason());
    deps.telemetry().controlLog(jobId, s.status() == JobStatus.Failed ? "ERROR" : "INFO", summary);
    changed(s);
  }

  private void changed(JobState s) {
    deps.telemetry().status(jobId, JobViews.status(s), s.status().isFinal(), s.status().name());
    deps.onChange().accept(s);
  }

  private JobEvent.Builder event() {
    return JobEvent.newBuilder().setJobId(jobId).setTimestampMs(System.currentTimeMillis());
  }
}

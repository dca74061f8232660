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

  /** Members that neither regrouped nor were reported failed within the regroup timeout are dropped. */
  private enum RegroupTimedOut implements Command { INSTANCE }

  /** An elastic job stayed below its minimum of workers for too long. */
  private enum MinWorkersTimedOut implements Command { INSTANCE }

  /** A task found running on a worker after a coordinator restart (see {@code Scheduler.TaskFound}). */
  public record Adopt(String taskId, String workerId, ActorRef<WorkerCommand> worker) implements Command {}

  /** Not every task of a job that was running reported back after the coordinator restarted. */
  private enum AdoptionTimedOut implements Command { INSTANCE }

  /** How elastic jobs react to membership changes and restarts (kiln.jobs.* in reference.conf). */
  public record ElasticSettings(Duration regroupTimeout, Duration minWorkersTimeout, int maxRestarts,
                                Duration reattachTimeout) {
    public static final ElasticSettings DEFAULTS = new ElasticSettings(Duration.ofSeconds(10), Duration.ofSeconds(60), 3,
        Duration.ofSeconds(45));
  }

  /** What a job entity needs from its surroundings. */
  public record Dependencies(ActorRef<Scheduler.Command> scheduler, JobTelemetry telemetry, String artifactsRoot,
                             Consumer<JobState> onChange, Consumer<JobState> onRecovered,
                             Duration checkpointInterval, Duration stopTimeout, Duration startTimeout,
                             ElasticSettings elastic) {
    public Dependencies(ActorRef<Scheduler.Command> scheduler, JobTelemetry telemetry, String artifactsRoot,
                        Consumer<JobState> onChange, Consumer<JobState> onRecovered,
                        Duration checkpointInterval, Duration stopTimeout, Duration startTimeout) {
      this(scheduler, telemetry, artifactsRoot, onChange, onRecovered, checkpointInterval, stopTimeout, startTimeout,
          ElasticSettings.DEFAULTS);
    }
  }

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
  /** Members that reported for the next generation of the group, by task id (in arrival order). */
  private final Map<String, TaskRendezvous> rendezvous = new java.util.LinkedHashMap<>();
  /** Members reported failed (by a peer's broken connection or the cluster), with the reason. */
  private final Map<String, String> suspects = new HashMap<>();
  /**
   * Ranks other than 0 that reported their training done: rank 0 still evaluates and writes the
   * model, and a rank lost after finishing is no survivor to regroup with (nor a loss to recover).
   */
  private final java.util.Set<String> finishedTasks = new java.util.HashSet<>();
  /** When the current regroup began (0: none in progress); the pause users see in the history. */
  private long regroupStartedAt;
  private boolean waitingForWorkers;
  /** After a coordinator restart: the job's tasks that reported back, while it waits for the rest. */
  private final java.util.Set<String> adopted = new java.util.HashSet<>();
  private long adoptionStartedAt;

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
        .onCommand(RegroupTimedOut.class, (s, c) -> regroupStartedAt == 0 ? Effect().noReply() : tryForm(s, true))
        .onCommand(MinWorkersTimedOut.class, (s, c) -> waitingForWorkers && !s.status().isFinal()
            ? fail("only " + rendezvous.size() + " of the job's minimum of " + s.minWorkers() + " workers were available for "
                + deps.elastic().minWorkersTimeout().toSeconds() + " s after it lost members")
            : Effect().noReply())
        .onCommand(Adopt.class, this::onAdopt)
        .onCommand(AdoptionTimedOut.class, this::onAdoptionTimedOut)
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
        return onRendezvous(s, r.getTaskId(), r.getRendezvous());
      case CHECKPOINT:
        return Effect().persist(event().setCheckpointCommitted(JobCheckpointCommitted.newBuilder()
            .setCheckpoint(r.getCheckpoint())).build()).thenNoReply();
      case COMPLETED:
        if (s.status() == JobStatus.Stopping) return stopped(s, "stopped by user after training finished");
        // Rank 0 evaluates and writes the model; the other ranks' completions carry no new result.
        if (!r.getTaskId().equals(s.taskIds().get(0))) {
          finishedTasks.add(r.getTaskId());
          return Effect().noReply();
        }
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

  /**
   * A member reports for the next generation of the group: at the start (every rank, once its data
   * plane listens), after its collective failed (with the peers it blames), when asked to regroup,
   * or as a new rank joining a running job. The group is formed once every member has reported or
   * is known to have failed; see {@link #tryForm}.
   */
  private ReplyEffect<JobEvent, JobState> onRendezvous(JobState s, String taskId, TaskRendezvous r) {
    if (s.status() != JobStatus.Scheduled && s.status() != JobStatus.Running) return Effect().noReply();
    if (r.getFromGeneration() > 0 && r.getFromGeneration() < s.generation()) return Effect().noReply(); // stale
    rendezvous.put(taskId, r);
    for (String suspect : r.getSuspectTaskIdsList()) {
      suspects.putIfAbsent(suspect, "reported failed by " + taskId + ": " + r.getReason());
    }
    if (r.getFromGeneration() > 0 && s.spec().getResources().getRecovery().equals("restart")
        && !r.getReason().startsWith(REGROUP_ASKED)) {
      return restartOrFail(s, "task " + taskId + " left generation " + r.getFromGeneration() + " at step "
          + r.getCompletedStep() + ": " + r.getReason() + " (recovery: restart)");
    }
    if (s.generation() > 0 && regroupStartedAt == 0) {
      // the first member to leave the current generation: everyone regroups at their next step boundary
      regroupStartedAt = System.currentTimeMillis();
      String why = r.getFromGeneration() == 0 ? "task " + taskId + " joins" : "task " + taskId + " left generation "
          + r.getFromGeneration() + " at step " + r.getCompletedStep() + ": " + r.getReason();
      deps.telemetry().controlLog(jobId, "WARN", "regrouping: " + why);
      askMembersToRegroup(s, why, r.getFromGeneration() > 0);
      timers.startSingleTimer(RegroupTimedOut.INSTANCE, deps.elastic().regroupTimeout());
    }
    return tryForm(s, false);
  }

  /** {@code urgent}: a member was lost, so a collective in flight can only fail; abort it now. */
  private void askMembersToRegroup(JobState s, String why, boolean urgent) {
    for (int i = 0; i < s.taskIds().size(); i++) {
      String t = s.taskIds().get(i);
      ActorRef<WorkerCommand> w = workerRefs.get(s.workerIds().get(i));
      if (w != null && !rendezvous.containsKey(t) && !suspects.containsKey(t)) {
        w.tell(new WorkerCommand.RegroupTask(jobId, t, s.generation(), why, urgent));
      }
    }
  }

  /**
   * Forms the next generation when every member has reported or is suspected (or the regroup timed
   * out): members that did not report are dropped, the rest get the group in their old rank order
   * (new ranks last), and the member with the most completed steps becomes the source whose state
   * everyone takes, so no completed step is lost. Below the job's minimum it waits for workers.
   */
  private ReplyEffect<JobEvent, JobState> tryForm(JobState s, boolean timedOut) {
    List<String> members = s.taskIds();
    boolean waiting = members.stream().anyMatch(t -> !rendezvous.containsKey(t) && !suspects.containsKey(t));
    if (waiting && (!timedOut || s.generation() == 0)) return Effect().noReply();
    List<String> joined = members.stream().filter(rendezvous::containsKey).toList();
    List<String> dropped = members.stream().filter(t -> !rendezvous.containsKey(t)).toList();
    long step = joined.stream().mapToLong(t -> rendezvous.get(t).getCompletedStep()).max().orElse(-1);
    List<JobEvent> events = new ArrayList<>();
    for (String t : dropped) {
      String why = suspects.getOrDefault(t, "did not regroup within " + deps.elastic().regroupTimeout().toSeconds() + " s");
      events.add(event().setMemberLost(io.kiln.protocol.proto.JobMemberLost.newBuilder().setTaskId(t)
          .setWorkerId(s.workerIds().get(members.indexOf(t))).setReason(why).setStep(Math.max(0, step))).build());
    }
    if (joined.size() < s.minWorkers()) {
      if (events.isEmpty() && waitingForWorkers) return Effect().noReply();
      return Effect().persist(events).thenRun(ns -> {
        dropMembers(s, dropped);
        if (!waitingForWorkers) {
          waitingForWorkers = true;
          timers.startSingleTimer(MinWorkersTimedOut.INSTANCE, deps.elastic().minWorkersTimeout());
          deps.scheduler().tell(new Scheduler.WantMore(jobId));
        }
        deps.telemetry().controlLog(jobId, "WARN", "waiting for workers: " + joined.size() + " rank(s) left, the job needs "
            + "at least " + ns.minWorkers() + "; failing in " + deps.elastic().minWorkersTimeout().toSeconds()
            + " s unless a worker joins");
      }).thenNoReply();
    }
    int source = 0;
    for (int i = 0; i < joined.size(); i++) {
      if (rendezvous.get(joined.get(i)).getCompletedStep() > rendezvous.get(joined.get(source)).getCompletedStep()) source = i;
    }
    boolean allNccl = s.generation() == 0 && joined.stream().allMatch(t -> rendezvous.get(t).getBackend().equals("nccl"));
    GroupSpec.Builder g = GroupSpec.newBuilder().setGeneration(s.generation() + 1).setBackend(allNccl ? "nccl" : "ring")
        .setSourceRank(source);
    List<String> workers = new ArrayList<>();
    for (String t : joined) {
      g.addDataAddresses(rendezvous.get(t).getDataAddress()).addTaskIds(t);
      workers.add(s.workerIds().get(members.indexOf(t)));
    }
    if (allNccl) g.setNcclUniqueId(rendezvous.get(joined.get(0)).getNcclUniqueId());
    GroupSpec group = g.build();
    TaskRendezvous from = rendezvous.get(joined.get(source));
    String detail = s.generation() == 0 ? "" : String.format(java.util.Locale.ROOT,
        "; paused %.1f s; continuing at step %d (epoch %d, sample %d) from %s's state", (System.currentTimeMillis()
            - regroupStartedAt) / 1000.0, Math.max(0, from.getCompletedStep()), from.getEpoch(), from.getEpochOffset(),
        joined.get(source));
    events.add(event().setGroupFormed(JobGroupFormed.newBuilder().setGroup(group).addAllWorkerIds(workers)
        .setDetail(detail)).build());
    return Effect().persist(events)
        .thenRun(ns -> {
          dropMembers(s, dropped);
          for (int rank = 0; rank < joined.size(); rank++) {
            ActorRef<WorkerCommand> w = workerRefs.get(workers.get(rank));
            if (w != null) w.tell(new WorkerCommand.FormGroup(jobId, joined.get(rank), group));
          }
          rendezvous.clear();
          suspects.clear();
          regroupStartedAt = 0;
          waitingForWorkers = false;
          timers.cancel(RegroupTimedOut.INSTANCE);
          timers.cancel(MinWorkersTimedOut.INSTANCE);
          if (joined.size() < ns.maxWorkers()) deps.scheduler().tell(new Scheduler.WantMore(jobId));
          deps.telemetry().controlLog(jobId, "INFO", "group generation " + group.getGeneration() + " formed: "
              + joined.size() + " ranks, " + group.getBackend() + " backend, " + String.join(" ", group.getDataAddressesList())
              + detail);
        })
        .thenNoReply();
  }

  /** Stops dropped members that may still run and gives their workers back. */
  private void dropMembers(JobState before, List<String> dropped) {
    for (String t : dropped) {
      String workerId = before.workerIds().get(before.taskIds().indexOf(t));
      ActorRef<WorkerCommand> w = workerRefs.get(workerId);
      if (w != null) w.tell(new WorkerCommand.StopTask(jobId, t, "dropped from the job's group"));
      deps.scheduler().tell(new Scheduler.ReleaseWorker(jobId, workerId, true));
      rendezvous.remove(t);
      suspects.remove(t);
    }
  }

  /** How a worker says it left its generation because the coordinator asked (not a failure). */
  static final String REGROUP_ASKED = "the coordinator asked for a regroup";

  /**
   * All ranks are gone (or the job restarts by policy): back to the queue to resume from the newest
   * checkpoint, or fail after too many restarts. Workers of failed ranks are not placed on again
   * until they answer (see {@link Scheduler.ReleaseWorker}).
   */
  private ReplyEffect<JobEvent, JobState> restartOrFail(JobState s, String reason) {
    if (s.restarts() >= deps.elastic().maxRestarts()) {
      return fail(reason + " (gave up after " + s.restarts() + " restart(s) from checkpoints)");
    }
    return Effect().persist(event().setRestarted(io.kiln.protocol.proto.JobRestarted.newBuilder().setReason(reason)
            .setResumeFrom(s.checkpointUri())).build())
        .thenRun(ns -> {
          stopTasks(s, "the job restarts from its checkpoint");
          for (String t : suspects.keySet()) {
            int i = s.taskIds().indexOf(t);
            if (i >= 0) deps.scheduler().tell(new Scheduler.ReleaseWorker(jobId, s.workerIds().get(i), true));
          }
          timers.cancelAll();
          rendezvous.clear();
          suspects.clear();
          finishedTasks.clear();
          regroupStartedAt = 0;
          waitingForWorkers = false;
          workerRefs.clear();
          deps.scheduler().tell(new Scheduler.Release(jobId));
          deps.telemetry().controlLog(jobId, "WARN", "job restarts: " + reason
              + (ns.checkpointUri().isEmpty() ? "; no checkpoint yet, starting over" : "; resuming from " + ns.checkpointUri()));
          changed(ns);
          requestPlacement(ns);
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
        taskIds.add(jobId + "-r" + (s.tasksStarted() + rank));
      }
      return Effect().persist(event().setScheduled(JobScheduled.newBuilder().addAllWorkerIds(workerIds).addAllTaskIds(taskIds)).build())
          .thenRun(ns -> {
            changed(ns);
            startTasks(ns, placed);
            timers.startSingleTimer(StartTimedOut.INSTANCE, deps.startTimeout());
          })
          .thenNoReply();
    }
    if (c.notice() instanceof Scheduler.Grown grown) return onGrown(s, grown.assignment());
    if (c.notice() instanceof Scheduler.WorkerLost lost) {
      if (!s.workerIds().contains(lost.workerId()) || s.status().isFinal() || s.status() == JobStatus.Pending) {
        return Effect().noReply();
      }
      if (s.status() == JobStatus.Stopping) return stopped(s, s.stopReason());
      List<String> lostTasks = new ArrayList<>();
      for (int i = 0; i < s.workerIds().size(); i++) {
        if (s.workerIds().get(i).equals(lost.workerId())) lostTasks.add(s.taskIds().get(i));
      }
      if (finishedTasks.containsAll(lostTasks)) return Effect().noReply(); // their part was done
      boolean survivors = s.taskIds().stream().anyMatch(t -> !lostTasks.contains(t) && !suspects.containsKey(t)
          && !finishedTasks.contains(t));
      if (!survivors) return restartOrFail(s, lost.reason() + " while running the job's last rank(s)");
      if (s.spec().getResources().getRecovery().equals("restart")) {
        return restartOrFail(s, lost.reason() + " (recovery: restart)");
      }
      if (s.generation() == 0) return restartOrFail(s, lost.reason() + " before the job's group formed");
      for (String t : lostTasks) suspects.put(t, lost.reason());
      if (regroupStartedAt == 0) {
        regroupStartedAt = System.currentTimeMillis();
        deps.telemetry().controlLog(jobId, "WARN", "regrouping: " + lost.reason());
        askMembersToRegroup(s, lost.reason(), true);
        timers.startSingleTimer(RegroupTimedOut.INSTANCE, deps.elastic().regroupTimeout());
      }
      return tryForm(s, false);
    }
    return Effect().noReply();
  }

  /** The scheduler offers one more worker: a new rank that joins at the next step boundary. */
  private ReplyEffect<JobEvent, JobState> onGrown(JobState s, Scheduler.Assignment a) {
    if (s.status() != JobStatus.Running || s.generation() == 0 || s.taskIds().size() >= s.maxWorkers()
        || s.workerIds().contains(a.workerId())) {
      deps.scheduler().tell(new Scheduler.ReleaseWorker(jobId, a.workerId(), false));
      return Effect().noReply();
    }
    String taskId = jobId + "-r" + s.tasksStarted();
    return Effect().persist(event().setMembersAdded(io.kiln.protocol.proto.JobMembersAdded.newBuilder()
            .addWorkerIds(a.workerId()).addTaskIds(taskId)).build())
        .thenRun(ns -> {
          workerRefs.put(a.workerId(), a.worker());
          int rank = ns.taskIds().size() - 1;
          a.worker().tell(new WorkerCommand.StartTask(assignment(ns, taskId, rank, ns.taskIds().size()), reportAdapter));
          deps.telemetry().controlLog(jobId, "INFO", "worker " + a.workerId() + " joins the job as task " + taskId
              + " (at the next step boundary, once it has loaded its data)");
          changed(ns);
        })
        .thenNoReply();
  }

  private ReplyEffect<JobEvent, JobState> onReconcile(JobState s, Reconcile c) {
    switch (s.status()) {
      case Pending:
        requestPlacement(s);
        return Effect().noReply();
      case Scheduled:
      case Running:
        // its tasks keep running on the workers (they hold their reports): wait for them to report
        // back, holding the job's workers meanwhile
        adoptionStartedAt = System.currentTimeMillis();
        deps.scheduler().tell(new Scheduler.Reserve(jobId, s.spec().getResources(), s.workerIds(), noticeAdapter));
        timers.startSingleTimer(AdoptionTimedOut.INSTANCE, deps.elastic().reattachTimeout());
        deps.telemetry().controlLog(jobId, "WARN", "the coordinator restarted while this job was "
            + s.status().name().toLowerCase() + ": waiting up to " + deps.elastic().reattachTimeout().toSeconds()
            + " s for its " + s.taskIds().size() + " task(s) to report back (they keep training meanwhile)");
        return Effect().noReply();
      case Stopping:
        return stopped(s, s.stopReason());
      default:
        return Effect().noReply();
    }
  }

  /** A task that kept running across a coordinator restart reported back: re-attach it, or stop it. */
  private ReplyEffect<JobEvent, JobState> onAdopt(JobState s, Adopt c) {
    boolean active = s.status() == JobStatus.Scheduled || s.status() == JobStatus.Running || s.status() == JobStatus.Stopping;
    if (!active || !s.taskIds().contains(c.taskId())) {
      c.worker().tell(new WorkerCommand.StopTask(jobId, c.taskId(), "task " + c.taskId() + " is no longer part of job "
          + jobId + " (" + s.status() + ")"));
      return Effect().noReply();
    }
    workerRefs.put(c.workerId(), c.worker());
    c.worker().tell(new WorkerCommand.AttachTask(jobId, c.taskId(), reportAdapter));
    if (s.status() == JobStatus.Stopping) c.worker().tell(new WorkerCommand.StopTask(jobId, c.taskId(), s.stopReason()));
    if (adoptionStartedAt == 0 || !adopted.add(c.taskId()) || !adopted.containsAll(s.taskIds())) return Effect().noReply();
    String detail = String.format(java.util.Locale.ROOT, "%d task(s) on %s reported back %.1f s after recovery; training "
        + "went on meanwhile", adopted.size(), String.join(", ", s.workerIds()),
        (System.currentTimeMillis() - adoptionStartedAt) / 1000.0);
    adoptionStartedAt = 0;
    adopted.clear();
    timers.cancel(AdoptionTimedOut.INSTANCE);
    return Effect().persist(event().setReattached(io.kiln.protocol.proto.JobReattached.newBuilder()
            .addAllTaskIds(s.taskIds()).setDetail(detail)).build())
        .thenRun(ns -> deps.telemetry().controlLog(jobId, "INFO", "re-attached after the coordinator restart: " + detail))
        .thenNoReply();
  }

  /** Some tasks did not report back: the others continue without them (elastic), or the job restarts. */
  private ReplyEffect<JobEvent, JobState> onAdoptionTimedOut(JobState s, AdoptionTimedOut c) {
    if (adoptionStartedAt == 0 || s.status().isFinal()) return Effect().noReply();
    adoptionStartedAt = 0;
    List<String> missing = s.taskIds().stream().filter(t -> !adopted.contains(t)).toList();
    String why = "did not report back within " + deps.elastic().reattachTimeout().toSeconds()
        + " s of the coordinator's restart";
    if (adopted.isEmpty() || s.generation() == 0 || s.spec().getResources().getRecovery().equals("restart")) {
      adopted.clear();
      return restartOrFail(s, "after the coordinator restarted, " + (s.taskIds().size() - missing.size()) + " of "
          + s.taskIds().size() + " task(s) reported back (" + String.join(", ", missing) + " " + why + ")");
    }
    adopted.clear();
    for (String t : missing) suspects.put(t, why);
    if (regroupStartedAt == 0) {
      regroupStartedAt = System.currentTimeMillis();
      deps.telemetry().controlLog(jobId, "WARN", "regrouping: " + String.join(", ", missing) + " " + why);
      askMembersToRegroup(s, why, true);
      timers.startSingleTimer(RegroupTimedOut.INSTANCE, deps.elastic().regroupTimeout());
    }
    return tryForm(s, false);
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
      a.worker().tell(new WorkerCommand.StartTask(assignment(s, s.taskIds().get(rank), rank, world), reportAdapter));
    }
    deps.telemetry().controlLog(jobId, "INFO", "scheduled on " + String.join(", ", s.workerIds()));
  }

  private TaskAssignment assignment(JobState s, String taskId, int rank, int world) {
    io.kiln.protocol.proto.JobSpec spec = s.spec();
    if (s.restarts() > 0 && !s.checkpointUri().isEmpty()) {
      // a restarted job resumes from its newest checkpoint (any world size: positions are in samples)
      spec = spec.toBuilder().setCheckpoint(spec.getCheckpoint().toBuilder().setResumeFrom(s.checkpointUri())).build();
    }
    return TaskAssignment.newBuilder().setJobId(jobId).setTaskId(taskId).setRank(rank).setWorldSize(world)
        .setSpec(spec).setJobArtifactsUri(deps.artifactsRoot() + "jobs/" + jobId + "/").build();
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

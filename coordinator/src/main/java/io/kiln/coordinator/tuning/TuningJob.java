package io.kiln.coordinator.tuning;

import io.kiln.coordinator.jobs.JobManager;
import io.kiln.coordinator.jobs.JobState;
import io.kiln.coordinator.jobs.JobStatus;
import io.kiln.coordinator.tuning.strategy.MedianStoppingRule;
import io.kiln.coordinator.tuning.strategy.SearchStrategy;
import io.kiln.coordinator.tuning.strategy.Suggestion;
import io.kiln.coordinator.tuning.strategy.TrialRecord;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TrialCreated;
import io.kiln.protocol.proto.TrialFinished;
import io.kiln.protocol.proto.TrialJobAssigned;
import io.kiln.protocol.proto.TrialRetried;
import io.kiln.protocol.proto.TuningEnded;
import io.kiln.protocol.proto.TuningEvent;
import io.kiln.protocol.proto.TuningSpec;
import io.kiln.protocol.proto.TuningStopRequested;
import io.kiln.protocol.proto.TuningSubmitted;
import io.kiln.protocol.proto.WarmStartTrial;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Function;
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
 * One hyperparameter tuning job, event-sourced. Trials are ordinary training jobs submitted to the
 * {@link JobManager}; the journal holds each trial's hyperparameters, its job id and its result, so
 * a restarted coordinator neither loses nor reruns a finished trial.
 *
 * <p>A trial is created (journaled) before its job is submitted, and its job id journaled when the
 * manager answers. A crash in between leaves a trial without a job: on recovery the job is looked
 * for by the trial's marker in {@code submittedBy} and adopted, else submitted. A periodic tick
 * polls the running trials' jobs (results, and intermediate values for the median rule) and starts
 * new trials while the budget and {@code maxParallelTrials} allow.
 */
public final class TuningJob
    extends EventSourcedBehaviorWithEnforcedReplies<TuningJob.Command, TuningEvent, TuningState> {

  public static final String ENTITY_TYPE = "TuningJob";
  /** A trial whose job the infrastructure lost (not the trial's fault) runs again, this many times at most. */
  static final int MAX_ATTEMPTS = 3;

  public sealed interface Command {}

  public record Submit(TuningSpec spec, String submittedBy, List<WarmStartTrial> warmStart,
                       ActorRef<StatusReply<TuningState>> replyTo) implements Command {}

  public record Get(ActorRef<TuningState> replyTo) implements Command {}

  public record Stop(String reason, ActorRef<StatusReply<TuningState>> replyTo) implements Command {}

  private enum Tick implements Command { INSTANCE }

  private record JobSubmitted(String trialId, int attempt, JobState job, String error) implements Command {}

  private record JobPolled(String trialId, String jobId, Optional<JobState> job) implements Command {}

  /** After recovery: the jobs, to find trials' jobs submitted just before a crash. */
  private record JobsListed(List<JobState> jobs) implements Command {}

  /** What a tuning job needs: the job manager, live progress of jobs, and where to report changes. */
  public record Dependencies(ActorRef<JobManager.Command> jobs, Function<String, Progress> liveProgress,
                             Duration pollInterval, Duration askTimeout, Consumer<TuningState> onChange,
                             Consumer<TuningState> onRecovered) {}

  public static Behavior<Command> create(String id, Dependencies deps) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new TuningJob(id, deps, ctx, timers)));
  }

  public static PersistenceId persistenceId(String id) {
    return PersistenceId.of(ENTITY_TYPE, id);
  }

  private final String id;
  private final Dependencies deps;
  private final ActorContext<Command> ctx;
  private final TimerScheduler<Command> timers;
  /** Running trials' intermediate values (finished epochs) and open epoch; not journaled until the trial ends. */
  private final Map<String, List<Double>> curves = new HashMap<>();
  private final Map<String, double[]> openEpoch = new HashMap<>();
  /** Trials whose job submission is in flight (so a tick does not submit them twice). */
  private final Set<String> submitting = new HashSet<>();
  /** Whether trials without a job may be submitted: after recovery, only once the jobs were searched. */
  private boolean adopted = true;
  private boolean listing;

  private TuningJob(String id, Dependencies deps, ActorContext<Command> ctx, TimerScheduler<Command> timers) {
    super(persistenceId(id));
    this.id = id;
    this.deps = deps;
    this.ctx = ctx;
    this.timers = timers;
  }

  @Override
  public TuningState emptyState() {
    return TuningState.empty(id);
  }

  @Override
  public EventHandler<TuningState, TuningEvent> eventHandler() {
    return newEventHandlerBuilder().forAnyState().onAnyEvent(TuningState::apply);
  }

  @Override
  public SignalHandler<TuningState> signalHandler() {
    return newSignalHandlerBuilder()
        .onSignal(RecoveryCompleted.instance(), state -> {
          deps.onRecovered().accept(state);
          if (state.status() == TuningStatus.Running || state.status() == TuningStatus.Stopping) {
            adopted = state.active().stream().noneMatch(t -> t.jobId().isEmpty());
            startTicking();
            ctx.getSelf().tell(Tick.INSTANCE);
          }
        })
        .build();
  }

  /** A reply class with its type argument, for ask (a class literal cannot carry one). */
  @SuppressWarnings("unchecked")
  private static <T> Class<T> replyClass(Class<?> c) {
    return (Class<T>) c;
  }

  @Override
  public CommandHandlerWithReply<Command, TuningEvent, TuningState> commandHandler() {
    return newCommandHandlerWithReplyBuilder().forAnyState()
        .onCommand(Submit.class, this::onSubmit)
        .onCommand(Get.class, (s, c) -> Effect().reply(c.replyTo(), s))
        .onCommand(Stop.class, this::onStop)
        .onCommand(Tick.class, this::onTick)
        .onCommand(JobSubmitted.class, this::onJobSubmitted)
        .onCommand(JobPolled.class, this::onJobPolled)
        .onCommand(JobsListed.class, this::onJobsListed)
        .build();
  }

  private ReplyEffect<TuningEvent, TuningState> onSubmit(TuningState s, Submit c) {
    if (s.status() != TuningStatus.New) {
      return Effect().reply(c.replyTo(), StatusReply.error("tuning job " + id + " already exists"));
    }
    return Effect().persist(event().setSubmitted(TuningSubmitted.newBuilder().setSpec(c.spec())
            .setSubmittedBy(c.submittedBy()).addAllWarmStart(c.warmStart())).build())
        .thenRun(ns -> {
          changed(ns);
          startTicking();
          ctx.getSelf().tell(Tick.INSTANCE);
        })
        .thenReply(c.replyTo(), StatusReply::success);
  }

  private ReplyEffect<TuningEvent, TuningState> onStop(TuningState s, Stop c) {
    if (s.status() == TuningStatus.New) return Effect().reply(c.replyTo(), StatusReply.error("no tuning job " + id));
    if (s.status().isFinal()) {
      return Effect().reply(c.replyTo(), StatusReply.error("tuning job " + id + " has already ended: " + s.status()));
    }
    if (s.status() == TuningStatus.Stopping) return Effect().reply(c.replyTo(), StatusReply.success(s));
    String reason = c.reason().isBlank() ? "stopped by user" : c.reason();
    List<TuningEvent> events = new ArrayList<>();
    events.add(event().setStopRequested(TuningStopRequested.newBuilder().setReason(reason)).build());
    // Trials whose job was not submitted yet just end; running ones end when their job confirms.
    for (TrialState t : s.active()) {
      if (t.jobId().isEmpty()) events.add(finished(t, TrialState.Status.Stopped, Double.NaN, Map.of(), reason, "").build());
    }
    return Effect().persist(events)
        .thenRun(ns -> {
          for (TrialState t : ns.active()) stopJob(t, reason);
          changed(ns);
          ctx.getSelf().tell(Tick.INSTANCE);
        })
        .thenReply(c.replyTo(), StatusReply::success);
  }

  private ReplyEffect<TuningEvent, TuningState> onTick(TuningState s, Tick c) {
    if (s.status() != TuningStatus.Running && s.status() != TuningStatus.Stopping) {
      timers.cancelAll();
      return Effect().noReply();
    }
    if (!adopted && !listing) {
      listing = true;
      ctx.ask(TuningJob.<List<JobState>>replyClass(List.class), deps.jobs(), deps.askTimeout(), JobManager.ListJobs::new,
          (list, err) -> new JobsListed(list));
    }
    for (TrialState t : s.active()) {
      if (!t.jobId().isEmpty()) poll(t);
      else if (adopted && s.status() == TuningStatus.Running && !submitting.contains(t.trialId())) submitJob(s, t);
    }
    if (s.status() == TuningStatus.Stopping) {
      if (s.active().isEmpty()) return end(TuningStatus.Stopped, s.stopReason());
      return Effect().noReply();
    }
    return startTrials(s);
  }

  /** Creates trials up to the parallelism and budget, or ends the job when nothing is left to do. */
  private ReplyEffect<TuningEvent, TuningState> startTrials(TuningState s) {
    TuningSpec spec = s.spec();
    SearchStrategy strategy = Strategies.strategy(spec);
    List<TrialRecord> records = new ArrayList<>(Strategies.records(s));
    int created = s.trials().size();
    int active = s.active().size();
    List<TuningEvent> events = new ArrayList<>();
    while (active < spec.getMaxParallelTrials() && created < spec.getMaxTrials()) {
      Optional<Suggestion> next = strategy.suggest(records);
      if (next.isEmpty()) break;
      Suggestion g = next.get();
      String trialId = String.format("t%03d", created + 1);
      events.add(event().setTrialCreated(TrialCreated.newBuilder().setTrialId(trialId).putAllHyperparameters(g.params())
          .setRung(g.rung()).setParentTrialId(g.parentId())).build());
      records.add(new TrialRecord(trialId, g.params(), TrialRecord.State.RUNNING, Double.NaN, g.rung(), g.parentId(), false, List.of()));
      created++;
      active++;
    }
    if (!events.isEmpty()) {
      return Effect().persist(events).thenRun(ns -> {
        changed(ns);
        for (TrialState t : ns.active()) if (t.jobId().isEmpty() && !submitting.contains(t.trialId())) submitJob(ns, t);
      }).thenNoReply();
    }
    if (active == 0) {
      String why = created >= spec.getMaxTrials() ? "all " + spec.getMaxTrials() + " trials finished"
          : strategy.exhausted(records) ? "the search space is exhausted after " + created + " trial(s)"
          : "the strategy has no further trial";
      return end(TuningStatus.Completed, why);
    }
    return Effect().noReply();
  }

  private ReplyEffect<TuningEvent, TuningState> onJobSubmitted(TuningState s, JobSubmitted c) {
    submitting.remove(c.trialId());
    TrialState t = s.trials().get(c.trialId());
    if (t == null || t.status() != TrialState.Status.Pending || t.attempts() != c.attempt() || !t.jobId().isEmpty()) {
      // the trial ended while its job was being submitted (the tuning job was stopped): that job must not run on
      if (c.job() != null && t != null && t.status().isFinal()) {
        deps.jobs().tell(new JobManager.Stop(c.job().jobId(), "tuning job " + id + ": " + t.reason(), ctx.getSystem().ignoreRef()));
      }
      return Effect().noReply();
    }
    if (c.job() == null) {
      return Effect().persist(finished(t, TrialState.Status.Failed, Double.NaN, Map.of(),
          "its training job could not be submitted: " + c.error(), "").build()).thenRun(this::changed).thenNoReply();
    }
    return Effect().persist(event().setTrialJobAssigned(TrialJobAssigned.newBuilder().setTrialId(t.trialId())
            .setJobId(c.job().jobId())).build())
        .thenRun(ns -> {
          changed(ns);
          // stopped while the job was being submitted: stop the job too
          if (ns.status() == TuningStatus.Stopping) stopJob(ns.trial(t.trialId()), ns.stopReason());
        })
        .thenNoReply();
  }

  private ReplyEffect<TuningEvent, TuningState> onJobsListed(TuningState s, JobsListed c) {
    listing = false;
    if (c.jobs() == null) return Effect().noReply(); // the job manager did not answer: the next tick asks again
    List<TuningEvent> events = new ArrayList<>();
    for (TrialState t : s.active()) {
      if (!t.jobId().isEmpty()) continue;
      String marker = marker(t);
      c.jobs().stream().filter(j -> j.submittedBy().endsWith(marker)).findFirst().ifPresent(j ->
          events.add(event().setTrialJobAssigned(TrialJobAssigned.newBuilder().setTrialId(t.trialId()).setJobId(j.jobId())).build()));
    }
    adopted = true;
    ctx.getSelf().tell(Tick.INSTANCE);
    return events.isEmpty() ? Effect().noReply() : Effect().persist(events).thenRun(this::changed).thenNoReply();
  }

  private ReplyEffect<TuningEvent, TuningState> onJobPolled(TuningState s, JobPolled c) {
    TrialState t = s.trials().get(c.trialId());
    // an answer about a job the trial no longer waits for, or a job the manager does not know yet (recovering)
    if (t == null || t.status() != TrialState.Status.Running || !t.jobId().equals(c.jobId()) || c.job().isEmpty()) {
      return Effect().noReply();
    }
    JobState job = c.job().get();
    List<Double> curve = curve(s, t, job);
    if (job.status() == JobStatus.Completed) return completed(s, t, job, curve);
    if (job.status() == JobStatus.Failed) {
      if (infrastructure(job.failureReason()) && t.attempts() < MAX_ATTEMPTS && s.status() == TuningStatus.Running) {
        return Effect().persist(event().setTrialRetried(TrialRetried.newBuilder().setTrialId(t.trialId())
                .setReason(job.failureReason())).build())
            .thenRun(ns -> {
              forget(t.trialId());
              changed(ns);
              submitJob(ns, ns.trial(t.trialId()));
            }).thenNoReply();
      }
      return finish(t, TrialState.Status.Failed, Double.NaN, job.metrics(), "job " + job.jobId() + " failed: "
          + job.failureReason(), job.checkpointUri());
    }
    if (job.status() == JobStatus.Stopped) {
      return finish(t, TrialState.Status.Stopped, Double.NaN, job.metrics(), "job " + job.jobId() + " stopped: "
          + job.stopReason(), job.checkpointUri());
    }
    if (s.status() == TuningStatus.Running && medianRule(s).map(r -> r.shouldStop(curve, others(s, t))).orElse(false)) {
      String why = "early-stopped by the median rule after " + curve.size() + " epoch(s)";
      deps.jobs().tell(new JobManager.Stop(job.jobId(), "tuning job " + id + ": " + why, ctx.getSystem().ignoreRef()));
      return finish(t, TrialState.Status.EarlyStopped, Double.NaN, Map.of(), why, job.checkpointUri());
    }
    return Effect().noReply();
  }

  private ReplyEffect<TuningEvent, TuningState> completed(TuningState s, TrialState t, JobState job, List<Double> curve) {
    String metric = s.spec().getObjective().getMetric();
    Double value = job.metrics().get(metric);
    if (value == null || value.isNaN()) {
      return finish(t, TrialState.Status.Failed, Double.NaN, job.metrics(), "job " + job.jobId() + " did not report the objective metric '"
          + metric + "' (it reported: " + String.join(", ", new java.util.TreeSet<>(job.metrics().keySet())) + ")", job.checkpointUri());
    }
    return finish(t, TrialState.Status.Completed, value, job.metrics(), "", job.checkpointUri());
  }

  private ReplyEffect<TuningEvent, TuningState> finish(TrialState t, TrialState.Status status, double objective,
                                                       Map<String, Double> metrics, String reason, String checkpoint) {
    TuningEvent.Builder e = finished(t, status, objective, metrics, reason, checkpoint);
    e.getTrialFinishedBuilder().addAllCurve(curves.getOrDefault(t.trialId(), List.of()));
    return Effect().persist(e.build()).thenRun(ns -> {
      forget(t.trialId());
      changed(ns);
      ctx.getSelf().tell(Tick.INSTANCE); // a slot is free
    }).thenNoReply();
  }

  private TuningEvent.Builder finished(TrialState t, TrialState.Status status, double objective, Map<String, Double> metrics,
                                       String reason, String checkpoint) {
    TrialFinished.Builder f = TrialFinished.newBuilder().setTrialId(t.trialId()).setStatus(status.name())
        .putAllMetrics(metrics).setReason(reason).setCheckpointUri(checkpoint);
    if (!Double.isNaN(objective)) f.setHasObjective(true).setObjective(objective);
    return event().setTrialFinished(f);
  }

  private ReplyEffect<TuningEvent, TuningState> end(TuningStatus status, String reason) {
    return Effect().persist(event().setEnded(TuningEnded.newBuilder().setStatus(status.name()).setReason(reason)).build())
        .thenRun(ns -> {
          timers.cancelAll();
          changed(ns);
        }).thenNoReply();
  }

  /** The trial's finished-epoch values, updated from its job's newest progress (live, else the journal's). */
  private List<Double> curve(TuningState s, TrialState t, JobState job) {
    Progress live = deps.liveProgress().apply(job.jobId());
    Progress p = live != null && (job.lastCheckpoint() == null || live.getTimestampMs() >= job.lastCheckpoint().getTimestampMs())
        ? live : job.lastCheckpoint();
    List<Double> c = curves.getOrDefault(t.trialId(), List.of());
    if (p == null) return c;
    String metric = s.spec().getObjective().getIntermediateMetric();
    boolean negate = !Curves.lowerIsBetter(metric, s.maximize());
    Progress oriented = negate ? p.toBuilder().setLoss(-p.getLoss()).clearMetrics().putAllMetrics(negated(p.getMetricsMap())).build() : p;
    c = Curves.update(c, openEpoch.computeIfAbsent(t.trialId(), k -> new double[2]), oriented, metric);
    curves.put(t.trialId(), c);
    return c;
  }

  private static Map<String, Double> negated(Map<String, Double> m) {
    Map<String, Double> out = new HashMap<>();
    m.forEach((k, v) -> out.put(k, -v));
    return out;
  }

  private Optional<MedianStoppingRule> medianRule(TuningState s) {
    var es = s.spec().getEarlyStopping();
    if (!es.getType().equals("median")) return Optional.empty();
    return Optional.of(new MedianStoppingRule(es.getMinTrials() == 0 ? 3 : es.getMinTrials(), Math.max(1, es.getMinEpochs())));
  }

  /** Curves of the finished trials the median rule compares with (completed ones, early-stopped too). */
  private static List<List<Double>> others(TuningState s, TrialState self) {
    return s.trials().values().stream()
        .filter(t -> t != self && (t.status() == TrialState.Status.Completed || t.status() == TrialState.Status.EarlyStopped))
        .map(TrialState::curve).toList();
  }

  /** Failures that say nothing about the trial's hyperparameters: the trial runs again. */
  static boolean infrastructure(String reason) {
    return reason.contains("coordinator restarted") || reason.contains("left the cluster")
        || reason.contains("no worker reported the task started");
  }

  private void poll(TrialState t) {
    String jobId = t.jobId();
    ctx.ask(TuningJob.<Optional<JobState>>replyClass(Optional.class), deps.jobs(), deps.askTimeout(),
        r -> new JobManager.Get(jobId, r), (o, err) -> new JobPolled(t.trialId(), jobId, o == null ? Optional.empty() : o));
  }

  private void submitJob(TuningState s, TrialState t) {
    JobSpec spec = trialSpec(s, t);
    String by = s.submittedBy() + marker(t);
    int attempt = t.attempts();
    submitting.add(t.trialId());
    ctx.ask(TuningJob.<StatusReply<JobState>>replyClass(StatusReply.class), deps.jobs(), deps.askTimeout(),
        r -> new JobManager.Submit(spec, by, r),
        (reply, err) -> {
          if (reply != null && reply.isSuccess()) return new JobSubmitted(t.trialId(), attempt, reply.getValue(), "");
          return new JobSubmitted(t.trialId(), attempt, null, err != null ? String.valueOf(err.getMessage())
              : reply.getError().getMessage());
        });
  }

  /** The template with the trial's hyperparameters; a promoted Hyperband trial resumes its parent's checkpoint. */
  JobSpec trialSpec(TuningState s, TrialState t) {
    JobSpec template = s.spec().getTrainingJob();
    JobSpec.Builder b = template.toBuilder().putAllHyperparameters(t.hyperparameters())
        .setName(s.spec().getName() + "-" + t.trialId());
    if (!t.parentTrialId().isEmpty() && !s.spec().getHyperband().getRestartPromoted()
        && (template.getAlgorithm().equals("mlp") || template.getAlgorithm().equals("cnn"))) {
      TrialState parent = s.trials().get(t.parentTrialId());
      if (parent != null && !parent.checkpointUri().isEmpty()) b.getCheckpointBuilder().setResumeFrom(parent.checkpointUri());
    }
    return b.build();
  }

  /** Identifies the trial's job among all jobs (its submittedBy ends with it), for adoption after a crash. */
  private String marker(TrialState t) {
    return " (tuning job " + id + " trial " + t.trialId() + " attempt " + t.attempts() + ")";
  }

  private void stopJob(TrialState t, String reason) {
    if (!t.jobId().isEmpty()) deps.jobs().tell(new JobManager.Stop(t.jobId(), "tuning job " + id + ": " + reason, ctx.getSystem().ignoreRef()));
  }

  private void forget(String trialId) {
    curves.remove(trialId);
    openEpoch.remove(trialId);
  }

  private void startTicking() {
    timers.startTimerWithFixedDelay(Tick.INSTANCE, deps.pollInterval());
  }

  private void changed(TuningState s) {
    deps.onChange().accept(s);
  }

  private TuningEvent.Builder event() {
    return TuningEvent.newBuilder().setTuningJobId(id).setTimestampMs(System.currentTimeMillis());
  }
}

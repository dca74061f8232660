package io.kiln.coordinator.jobs;

import io.kiln.coordinator.scheduling.Scheduler;
import io.kiln.protocol.proto.JobSpec;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The coordinator's job registry (a cluster singleton): creates a {@link TrainingJob} entity per
 * job, recovers every job from the journal when it starts, routes commands to them and keeps a
 * summary of each for listing. Also owns the {@link Scheduler}.
 */
public final class JobManager extends AbstractBehavior<JobManager.Command> {

  public sealed interface Command {}

  public record Submit(JobSpec spec, String submittedBy, ActorRef<StatusReply<JobState>> replyTo) implements Command {}

  public record Get(String jobId, ActorRef<Optional<JobState>> replyTo) implements Command {}

  public record ListJobs(ActorRef<List<JobState>> replyTo) implements Command {}

  public record Stop(String jobId, String reason, ActorRef<StatusReply<JobState>> replyTo) implements Command {}

  public record ListWorkers(ActorRef<List<Scheduler.WorkerView>> replyTo) implements Command {}

  public record GetQueueReason(String jobId, ActorRef<Optional<String>> replyTo) implements Command {}

  /** Ready once every job in the journal has been recovered. */
  public record IsReady(ActorRef<Boolean> replyTo) implements Command {}

  private record JobChanged(JobState state) implements Command {}

  private record JobRecovered(JobState state) implements Command {}

  private record JobIdsLoaded(List<String> jobIds) implements Command {}

  private record JobIdsFailed(String reason) implements Command {}

  /** The scheduler found a task running on a worker (it outlived a coordinator restart). */
  private record TaskFound(Scheduler.TaskFound found) implements Command {}

  /** Where the manager finds persisted job ids (the JDBC read journal in production). */
  public interface JobIdSource extends Supplier<Source<String, NotUsed>> {}

  public record Settings(String artifactsRoot, Duration checkpointInterval, Duration stopTimeout, Duration startTimeout,
                         TrainingJob.ElasticSettings elastic) {
    public Settings(String artifactsRoot, Duration checkpointInterval, Duration stopTimeout, Duration startTimeout) {
      this(artifactsRoot, checkpointInterval, stopTimeout, startTimeout, TrainingJob.ElasticSettings.DEFAULTS);
    }
  }

  public static Behavior<Command> create(JobIdSource ids, io.kiln.coordinator.telemetry.JobTelemetry telemetry,
                                         Settings settings) {
    return Behaviors.setup(ctx -> new JobManager(ctx, ids, telemetry, settings));
  }

  private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss");
  private final SecureRandom random = new SecureRandom();
  private final Map<String, ActorRef<TrainingJob.Command>> jobs = new HashMap<>();
  private final Map<String, JobState> summaries = new HashMap<>();
  private final ActorRef<Scheduler.Command> scheduler;
  private final TrainingJob.Dependencies deps;
  /** Jobs found in the journal whose entities have not finished recovery; null until the ids are loaded. */
  private java.util.Set<String> recovering;

  private JobManager(ActorContext<Command> ctx, JobIdSource ids, io.kiln.coordinator.telemetry.JobTelemetry telemetry,
                     Settings settings) {
    super(ctx);
    this.scheduler = ctx.spawn(Scheduler.create(ctx.messageAdapter(Scheduler.TaskFound.class, TaskFound::new)),
        "scheduler");
    ActorRef<Command> self = ctx.getSelf();
    this.deps = new TrainingJob.Dependencies(scheduler, telemetry, settings.artifactsRoot(),
        state -> self.tell(new JobChanged(state)), state -> self.tell(new JobRecovered(state)), settings.checkpointInterval(), settings.stopTimeout(),
        settings.startTimeout(), settings.elastic());
    String prefix = TrainingJob.ENTITY_TYPE + "|";
    CompletionStage<List<String>> loaded = ids.get()
        .filter(pid -> pid.startsWith(prefix))
        .map(pid -> pid.substring(prefix.length()))
        .runWith(Sink.seq(), ctx.getSystem());
    ctx.pipeToSelf(loaded, (list, err) -> list != null ? new JobIdsLoaded(list) : new JobIdsFailed(String.valueOf(err)));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(JobIdsLoaded.class, this::onIdsLoaded)
        .onMessage(JobIdsFailed.class, m -> {
          throw new IllegalStateException("cannot list jobs in the journal: " + m.reason());
        })
        .onMessage(Submit.class, this::onSubmit)
        .onMessage(Get.class, this::onGet)
        .onMessage(ListJobs.class, m -> {
          List<JobState> all = new ArrayList<>(summaries.values());
          all.sort(Comparator.comparingLong(JobState::submittedAt).reversed().thenComparing(JobState::jobId));
          m.replyTo().tell(all);
          return this;
        })
        .onMessage(Stop.class, this::onStop)
        .onMessage(ListWorkers.class, m -> {
          scheduler.tell(new Scheduler.ListWorkers(m.replyTo()));
          return this;
        })
        .onMessage(GetQueueReason.class, m -> {
          scheduler.tell(new Scheduler.GetQueueReason(m.jobId(), m.replyTo()));
          return this;
        })
        .onMessage(IsReady.class, m -> {
          m.replyTo().tell(recovering != null && recovering.isEmpty());
          return this;
        })
        .onMessage(JobChanged.class, m -> {
          summaries.put(m.state().jobId(), m.state());
          return this;
        })
        .onMessage(JobRecovered.class, this::onRecovered)
        .onMessage(TaskFound.class, this::onTaskFound)
        .build();
  }

  /** Hands a task found running to its job, which re-attaches it or stops it. */
  private Behavior<Command> onTaskFound(TaskFound m) {
    Scheduler.TaskFound f = m.found();
    if (recovering == null || !recovering.isEmpty()) {
      // the jobs are still being recovered: ask again shortly
      getContext().scheduleOnce(Duration.ofMillis(500), getContext().getSelf(), m);
      return this;
    }
    ActorRef<TrainingJob.Command> job = jobs.get(f.jobId());
    if (job == null) {
      getContext().getLog().warn("worker {} runs task {} of unknown job {}; stopping it", f.workerId(), f.taskId(), f.jobId());
      f.worker().tell(new io.kiln.protocol.cluster.WorkerCommand.StopTask(f.jobId(), f.taskId(), "its job is unknown here"));
    } else {
      job.tell(new TrainingJob.Adopt(f.taskId(), f.workerId(), f.worker()));
    }
    return this;
  }

  private Behavior<Command> onIdsLoaded(JobIdsLoaded m) {
    recovering = new java.util.HashSet<>();
    for (String id : m.jobIds()) {
      if (!jobs.containsKey(id)) {
        recovering.add(id);
        spawn(id);
      }
    }
    getContext().getLog().info("recovering {} job(s) from the journal", recovering.size());
    return this;
  }

  private Behavior<Command> onRecovered(JobRecovered m) {
    if (m.state().status() != JobStatus.New) summaries.put(m.state().jobId(), m.state());
    if (recovering != null && recovering.remove(m.state().jobId()) && recovering.isEmpty()) {
      getContext().getLog().info("all jobs recovered; {} job(s) known", summaries.size());
    }
    return this;
  }

  private Behavior<Command> onSubmit(Submit m) {
    String id;
    do {
      id = "job-" + ZonedDateTime.now(ZoneOffset.UTC).format(ID_TIME) + "-" + String.format("%04x", random.nextInt(1 << 16));
    } while (jobs.containsKey(id));
    spawn(id).tell(new TrainingJob.Submit(m.spec(), m.submittedBy(), m.replyTo()));
    return this;
  }

  private Behavior<Command> onGet(Get m) {
    ActorRef<TrainingJob.Command> job = jobs.get(m.jobId());
    if (job == null) {
      m.replyTo().tell(Optional.empty());
    } else {
      ActorRef<Optional<JobState>> reply = m.replyTo();
      getContext().spawnAnonymous(Behaviors.<JobState>setup(c -> {
        job.tell(new TrainingJob.Get(c.getSelf()));
        return Behaviors.receiveMessage(s -> {
          reply.tell(s.status() == JobStatus.New ? Optional.empty() : Optional.of(s));
          return Behaviors.stopped();
        });
      }));
    }
    return this;
  }

  private Behavior<Command> onStop(Stop m) {
    ActorRef<TrainingJob.Command> job = jobs.get(m.jobId());
    if (job == null) m.replyTo().tell(StatusReply.error("no job " + m.jobId()));
    else job.tell(new TrainingJob.Stop(m.reason(), m.replyTo()));
    return this;
  }

  private ActorRef<TrainingJob.Command> spawn(String id) {
    ActorRef<TrainingJob.Command> ref = getContext().spawn(TrainingJob.create(id, deps), id);
    jobs.put(id, ref);
    return ref;
  }
}

package io.kiln.coordinator.tuning;

import io.kiln.coordinator.jobs.JobManager;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TuningSpec;
import io.kiln.protocol.proto.WarmStartTrial;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.stream.javadsl.Sink;

/**
 * The registry of tuning jobs (a cluster singleton beside the {@link JobManager}): creates a
 * {@link TuningJob} entity per tuning job, recovers them all from the journal when it starts,
 * resolves warm-start parents at submission and keeps a summary of each for listing.
 */
public final class TuningManager extends AbstractBehavior<TuningManager.Command> {

  public sealed interface Command {}

  public record Submit(TuningSpec spec, String submittedBy, ActorRef<StatusReply<TuningState>> replyTo) implements Command {}

  public record Get(String id, ActorRef<Optional<TuningState>> replyTo) implements Command {}

  public record ListTuningJobs(ActorRef<List<TuningState>> replyTo) implements Command {}

  public record Stop(String id, String reason, ActorRef<StatusReply<TuningState>> replyTo) implements Command {}

  private record Changed(TuningState state) implements Command {}

  private record Recovered(TuningState state) implements Command {}

  private record IdsLoaded(List<String> ids) implements Command {}

  private record IdsFailed(String reason) implements Command {}

  public record Settings(Duration pollInterval, Duration askTimeout) {}

  public static Behavior<Command> create(JobManager.JobIdSource ids, ActorRef<JobManager.Command> jobs,
                                         Function<String, Progress> liveProgress, Settings settings) {
    return Behaviors.setup(ctx -> new TuningManager(ctx, ids, jobs, liveProgress, settings));
  }

  private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss");
  private final SecureRandom random = new SecureRandom();
  private final Map<String, ActorRef<TuningJob.Command>> entities = new HashMap<>();
  private final Map<String, TuningState> summaries = new HashMap<>();
  private final TuningJob.Dependencies deps;
  /** Submissions that arrived before recovery finished (warm start needs the parents' states). */
  private final List<Submit> waiting = new ArrayList<>();
  private Set<String> recovering;

  private TuningManager(ActorContext<Command> ctx, JobManager.JobIdSource ids, ActorRef<JobManager.Command> jobs,
                        Function<String, Progress> liveProgress, Settings settings) {
    super(ctx);
    ActorRef<Command> self = ctx.getSelf();
    this.deps = new TuningJob.Dependencies(jobs, liveProgress, settings.pollInterval(), settings.askTimeout(),
        s -> self.tell(new Changed(s)), s -> self.tell(new Recovered(s)));
    String prefix = TuningJob.ENTITY_TYPE + "|";
    CompletionStage<List<String>> loaded = ids.get().filter(pid -> pid.startsWith(prefix))
        .map(pid -> pid.substring(prefix.length())).runWith(Sink.seq(), ctx.getSystem());
    ctx.pipeToSelf(loaded, (list, err) -> list != null ? new IdsLoaded(list) : new IdsFailed(String.valueOf(err)));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(IdsLoaded.class, this::onIdsLoaded)
        .onMessage(IdsFailed.class, m -> {
          throw new IllegalStateException("cannot list tuning jobs in the journal: " + m.reason());
        })
        .onMessage(Submit.class, this::onSubmit)
        .onMessage(Get.class, this::onGet)
        .onMessage(ListTuningJobs.class, m -> {
          List<TuningState> all = new ArrayList<>(summaries.values());
          all.sort(Comparator.comparingLong(TuningState::submittedAt).reversed().thenComparing(TuningState::tuningJobId));
          m.replyTo().tell(all);
          return this;
        })
        .onMessage(Stop.class, m -> {
          ActorRef<TuningJob.Command> e = entities.get(m.id());
          if (e == null) m.replyTo().tell(StatusReply.error("no tuning job " + m.id()));
          else e.tell(new TuningJob.Stop(m.reason(), m.replyTo()));
          return this;
        })
        .onMessage(Changed.class, m -> {
          summaries.put(m.state().tuningJobId(), m.state());
          return this;
        })
        .onMessage(Recovered.class, this::onRecovered)
        .build();
  }

  private Behavior<Command> onIdsLoaded(IdsLoaded m) {
    recovering = new HashSet<>();
    for (String id : m.ids()) {
      if (!entities.containsKey(id)) {
        recovering.add(id);
        spawn(id);
      }
    }
    getContext().getLog().info("recovering {} tuning job(s) from the journal", recovering.size());
    drainIfRecovered();
    return this;
  }

  private Behavior<Command> onRecovered(Recovered m) {
    if (m.state().status() != TuningStatus.New) summaries.put(m.state().tuningJobId(), m.state());
    if (recovering != null) {
      recovering.remove(m.state().tuningJobId());
      drainIfRecovered();
    }
    return this;
  }

  private void drainIfRecovered() {
    if (recovering == null || !recovering.isEmpty()) return;
    List<Submit> w = new ArrayList<>(waiting);
    waiting.clear();
    w.forEach(this::onSubmit);
  }

  private Behavior<Command> onSubmit(Submit m) {
    if (recovering == null || !recovering.isEmpty()) {
      waiting.add(m);
      return this;
    }
    List<WarmStartTrial> warm = new ArrayList<>();
    for (String parentId : m.spec().getWarmStartFromList()) {
      TuningState parent = summaries.get(parentId);
      if (parent == null) {
        m.replyTo().tell(StatusReply.error("warmStartFrom: no tuning job " + parentId));
        return this;
      }
      if (!parent.spec().getObjective().getMetric().equals(m.spec().getObjective().getMetric())
          || parent.maximize() != m.spec().getObjective().getType().equals("Maximize")) {
        m.replyTo().tell(StatusReply.error("warmStartFrom: tuning job " + parentId + " optimizes "
            + parent.spec().getObjective().getType() + " " + parent.spec().getObjective().getMetric() + ", not "
            + m.spec().getObjective().getType() + " " + m.spec().getObjective().getMetric()));
        return this;
      }
      for (WarmStartTrial w : parent.warmStart()) warm.add(w); // the parent's own seeds carry over
      for (TrialState t : parent.trials().values()) {
        if (t.hasObjective()) {
          warm.add(WarmStartTrial.newBuilder().setTuningJobId(parentId).setTrialId(t.trialId())
              .putAllHyperparameters(t.hyperparameters()).setObjective(t.objective()).build());
        }
      }
    }
    TuningSpec spec = m.spec();
    // A seed is always recorded, so that any tuning job can be rerun exactly.
    if (spec.getSeed() == 0) spec = spec.toBuilder().setSeed(1 + (random.nextLong() & Long.MAX_VALUE) % 1_000_000_000L).build();
    String id;
    do {
      id = "tune-" + ZonedDateTime.now(ZoneOffset.UTC).format(ID_TIME) + "-" + String.format("%04x", random.nextInt(1 << 16));
    } while (entities.containsKey(id));
    spawn(id).tell(new TuningJob.Submit(spec, m.submittedBy(), warm, m.replyTo()));
    return this;
  }

  private Behavior<Command> onGet(Get m) {
    ActorRef<TuningJob.Command> e = entities.get(m.id());
    if (e == null) {
      m.replyTo().tell(Optional.empty());
      return this;
    }
    ActorRef<Optional<TuningState>> reply = m.replyTo();
    getContext().spawnAnonymous(Behaviors.<TuningState>setup(c -> {
      e.tell(new TuningJob.Get(c.getSelf()));
      return Behaviors.receiveMessage(s -> {
        reply.tell(s.status() == TuningStatus.New ? Optional.empty() : Optional.of(s));
        return Behaviors.stopped();
      });
    }));
    return this;
  }

  private ActorRef<TuningJob.Command> spawn(String id) {
    ActorRef<TuningJob.Command> ref = getContext().spawn(TuningJob.create(id, deps), id);
    entities.put(id, ref);
    return ref;
  }
}

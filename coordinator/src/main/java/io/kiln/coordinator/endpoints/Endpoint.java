package io.kiln.coordinator.endpoints;

import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointCreated;
import io.kiln.protocol.proto.EndpointDeleted;
import io.kiln.protocol.proto.EndpointEvent;
import io.kiln.protocol.proto.EndpointFailed;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointReplicaAdded;
import io.kiln.protocol.proto.EndpointReplicaRemoved;
import io.kiln.protocol.proto.EndpointReplicasReady;
import io.kiln.protocol.proto.EndpointUpdateStarted;
import io.kiln.protocol.proto.EndpointVariant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * One real-time endpoint (event-sourced). Creation and every update start a new generation of
 * replicas ({@link ReplicaLauncher}) while the current one serves; when all are ready the routes
 * switch ({@link RoutingTable}) and the old replicas drain (their requests in flight finish) and
 * stop: blue/green without a dropped request. Autoscaling adds or removes one replica of a variant
 * at a time on requests in flight per replica. After a coordinator restart the recorded replicas
 * that still answer are routed to again; otherwise the endpoint starts a fresh generation.
 */
public final class Endpoint extends EventSourcedBehavior<Endpoint.Command, EndpointEvent, EndpointState> {
  public static final String ENTITY_TYPE = "Endpoint";

  public sealed interface Command {}

  public record Create(EndpointConfig config, String user, ActorRef<StatusReply<EndpointState>> replyTo) implements Command {}

  public record Update(EndpointConfig config, String user, ActorRef<StatusReply<EndpointState>> replyTo) implements Command {}

  public record Delete(String user, ActorRef<StatusReply<EndpointState>> replyTo) implements Command {}

  public record Get(ActorRef<EndpointState> replyTo) implements Command {}

  private record Launched(long generation, List<EndpointReplica> replicas) implements Command {}

  private record LaunchFailed(long generation, String reason) implements Command {}

  private record Reattached(List<EndpointReplica> alive) implements Command {}

  private record ScaledUp(long generation, EndpointReplica replica) implements Command {}

  private record ScaleFailed(String reason) implements Command {}

  private enum Tick implements Command { INSTANCE }

  /** The result of a health round: replicas that did not answer {@code /ping}. */
  private record HealthChecked(List<EndpointReplica> silent) implements Command {}

  /** What the entity works with: processes, routes, the blocking pool and autoscaling knobs. */
  public record Context(ReplicaLauncher launcher, RoutingTable routing, java.util.concurrent.Executor blocking,
                        Autoscale autoscale) {}

  public record Autoscale(double targetInFlight, java.time.Duration scaleUpAfter, java.time.Duration scaleDownAfter,
                          java.time.Duration interval) {}

  public static Behavior<Command> create(String name, Context c) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
      timers.startTimerWithFixedDelay(Tick.INSTANCE, c.autoscale().interval());
      return new Endpoint(name, c, ctx);
    }));
  }

  public static PersistenceId persistenceId(String name) {
    return PersistenceId.of(ENTITY_TYPE, name);
  }

  private final String name;
  private final Context c;
  private final ActorContext<Command> ctx;
  private final Map<String, Long> highSince = new HashMap<>();
  private boolean scaling;
  private long lastRefillFailure = System.nanoTime() - java.util.concurrent.TimeUnit.MINUTES.toNanos(1);
  /** Health rounds: one at a time, every {@link #HEALTH_EVERY}; a replica silent twice in a row is replaced. */
  private static final long HEALTH_EVERY = java.util.concurrent.TimeUnit.SECONDS.toNanos(3);
  private long lastHealth = System.nanoTime();
  private boolean checking;
  private final Map<String, Integer> silentRounds = new HashMap<>();

  private Endpoint(String name, Context c, ActorContext<Command> ctx) {
    super(persistenceId(name));
    this.name = name;
    this.c = c;
    this.ctx = ctx;
  }

  @Override
  public EndpointState emptyState() {
    return EndpointState.empty(name);
  }

  @Override
  public EventHandler<EndpointState, EndpointEvent> eventHandler() {
    return newEventHandlerBuilder().forAnyState().onAnyEvent(EndpointState::apply);
  }

  @Override
  public SignalHandler<EndpointState> signalHandler() {
    return newSignalHandlerBuilder().onSignal(RecoveryCompleted.instance(), this::recovered).build();
  }

  @Override
  public CommandHandler<Command, EndpointEvent, EndpointState> commandHandler() {
    return newCommandHandlerBuilder().forAnyState()
        .onCommand(Create.class, this::onCreate)
        .onCommand(Update.class, this::onUpdate)
        .onCommand(Delete.class, this::onDelete)
        .onCommand(Get.class, (s, g) -> Effect().reply(g.replyTo(), s))
        .onCommand(Launched.class, this::onLaunched)
        .onCommand(LaunchFailed.class, this::onLaunchFailed)
        .onCommand(Reattached.class, this::onReattached)
        .onCommand(ScaledUp.class, this::onScaledUp)
        .onCommand(ScaleFailed.class, (s, f) -> {
          scaling = false;
          lastRefillFailure = System.nanoTime();
          ctx.getLog().warn("endpoint {}: scale up failed: {}", name, f.reason());
          return Effect().none();
        })
        .onCommand(Tick.class, this::onTick)
        .onCommand(HealthChecked.class, this::onHealthChecked)
        .build();
  }

  private Effect<EndpointEvent, EndpointState> onCreate(EndpointState s, Create cmd) {
    if (s.live()) return Effect().reply(cmd.replyTo(), StatusReply.error(EndpointException.conflict("endpoint " + name + " already exists")));
    EndpointEvent e = event().setCreated(EndpointCreated.newBuilder().setConfig(cmd.config()).setCreatedBy(cmd.user())).build();
    return Effect().persist(e).thenRun(ns -> launch(ns.generation(), ns.pending())).thenReply(cmd.replyTo(), StatusReply::success);
  }

  private Effect<EndpointEvent, EndpointState> onUpdate(EndpointState s, Update cmd) {
    if (!s.live()) return Effect().reply(cmd.replyTo(), StatusReply.error(EndpointException.notFound("no endpoint " + name)));
    if (s.pending() != null) {
      return Effect().reply(cmd.replyTo(), StatusReply.error(EndpointException.conflict("endpoint " + name + " is "
          + s.status() + " (generation " + s.generation() + "): wait until it is InService")));
    }
    return startGeneration(s, cmd.config(), cmd.user()).thenReply(cmd.replyTo(), StatusReply::success);
  }

  private org.apache.pekko.persistence.typed.javadsl.EffectBuilder<EndpointEvent, EndpointState> startGeneration(
      EndpointState s, EndpointConfig config, String user) {
    long gen = s.generation() + 1;
    EndpointEvent e = event().setUpdateStarted(EndpointUpdateStarted.newBuilder().setConfig(config).setGeneration(gen)
        .setUpdatedBy(user)).build();
    return Effect().persist(e).thenRun(ns -> launch(gen, config));
  }

  private Effect<EndpointEvent, EndpointState> onDelete(EndpointState s, Delete cmd) {
    if (!s.live()) return Effect().reply(cmd.replyTo(), StatusReply.error(EndpointException.notFound("no endpoint " + name)));
    List<EndpointReplica> old = s.replicas();
    EndpointEvent e = event().setDeleted(EndpointDeleted.newBuilder().setDeletedBy(cmd.user())).build();
    return Effect().persist(e).thenRun(ns -> {
      c.routing().remove(name);
      drainAndStop(old);
    }).thenReply(cmd.replyTo(), StatusReply::success);
  }

  private Effect<EndpointEvent, EndpointState> onLaunched(EndpointState s, Launched l) {
    if (!s.live() || s.pending() == null || l.generation() != s.generation()) {
      ctx.getLog().info("endpoint {}: generation {} is no longer wanted; stopping its replicas", name, l.generation());
      drainAndStop(l.replicas());
      return Effect().none();
    }
    Set<String> keep = l.replicas().stream().map(EndpointReplica::getUrl).collect(Collectors.toSet());
    List<EndpointReplica> old = s.replicas().stream().filter(r -> !keep.contains(r.getUrl())).toList();
    EndpointEvent e = event().setReplicasReady(EndpointReplicasReady.newBuilder().setGeneration(l.generation())
        .addAllReplicas(l.replicas())).build();
    return Effect().persist(e).thenRun(ns -> {
      c.routing().set(name, ns.config(), ns.replicas()); // the switch: new requests go to the new generation
      ctx.getLog().info("endpoint {}: generation {} in service; draining {} old replicas", name, l.generation(), old.size());
      drainAndStop(old);
    });
  }

  private Effect<EndpointEvent, EndpointState> onLaunchFailed(EndpointState s, LaunchFailed f) {
    if (!s.live() || s.pending() == null || f.generation() != s.generation()) return Effect().none();
    ctx.getLog().warn("endpoint {}: generation {} failed: {}", name, f.generation(), f.reason());
    return Effect().persist(event().setFailed(EndpointFailed.newBuilder().setGeneration(f.generation()).setReason(f.reason())).build());
  }

  private void recovered(EndpointState s) {
    if (!s.live()) return;
    List<EndpointReplica> recorded = s.replicas();
    ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> recorded.stream().filter(c.launcher()::answers).toList(), c.blocking()),
        (alive, err) -> new Reattached(alive == null ? List.of() : alive));
  }

  private Effect<EndpointEvent, EndpointState> onReattached(EndpointState s, Reattached r) {
    if (!s.live()) return Effect().none();
    boolean allAlive = r.alive().size() == s.replicas().size();
    if (s.pending() == null && allAlive && s.status() != EndpointState.Status.Failed) {
      c.routing().set(name, s.config(), s.replicas());
      ctx.getLog().info("endpoint {}: reattached to its {} replicas", name, s.replicas().size());
      return Effect().none();
    }
    if (s.status() == EndpointState.Status.Failed) return Effect().none();
    if (!r.alive().isEmpty() && s.config() != null) c.routing().set(name, s.config(), r.alive());
    EndpointConfig want = s.pending() != null ? s.pending() : s.config();
    ctx.getLog().info("endpoint {}: the coordinator restarted; starting a fresh generation", name);
    List<EndpointReplica> dead = s.replicas().stream().filter(x -> !r.alive().contains(x)).toList();
    dead.forEach(x -> c.launcher().stop(x, "not answering after a coordinator restart"));
    return startGeneration(s, want, "coordinator restart");
  }

  private Effect<EndpointEvent, EndpointState> onTick(EndpointState s, Tick t) {
    if (scaling || s.status() != EndpointState.Status.InService || s.config() == null) return Effect().none();
    Effect<EndpointEvent, EndpointState> lost = replaceLost(s);
    if (lost != null) return lost;
    checkHealth(s);
    long now = System.nanoTime();
    for (EndpointVariant v : s.config().getVariantsList()) {
      if (v.getMaxInstances() <= v.getInstances()) continue;
      List<EndpointReplica> rs = s.replicas().stream().filter(r -> r.getVariant().equals(v.getName())).toList();
      if (rs.isEmpty()) continue;
      double avg = rs.stream().mapToInt(r -> c.routing().inFlight(r.getUrl())).sum() / (double) rs.size();
      if (avg >= c.autoscale().targetInFlight()) {
        long since = highSince.computeIfAbsent(v.getName(), k -> now);
        if (rs.size() < v.getMaxInstances() && now - since >= c.autoscale().scaleUpAfter().toNanos()) {
          highSince.remove(v.getName());
          scaling = true;
          long gen = s.generation();
          EndpointConfig config = s.config();
          ctx.getLog().info("endpoint {}: variant {} averages {} in flight per replica: adding one", name, v.getName(), avg);
          ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> c.launcher().launchOne(name, gen, config, v), c.blocking()),
              (r, err) -> err == null ? new ScaledUp(gen, r) : new ScaleFailed(reason(err)));
          return Effect().none();
        }
        continue;
      }
      highSince.remove(v.getName());
      boolean idle = rs.stream().allMatch(r -> c.routing().idleNanos(r.getUrl()) >= c.autoscale().scaleDownAfter().toNanos());
      if (idle && rs.size() > v.getInstances()) {
        EndpointReplica victim = rs.stream().max(Comparator.comparing(EndpointReplica::getUrl)).orElseThrow();
        EndpointEvent e = event().setReplicaRemoved(EndpointReplicaRemoved.newBuilder().setUrl(victim.getUrl())
            .setReason("variant " + v.getName() + " idle for " + c.autoscale().scaleDownAfter().toSeconds() + " s")).build();
        return Effect().persist(e).thenRun(ns -> {
          c.routing().set(name, ns.config(), ns.replicas());
          drainAndStop(List.of(victim));
        });
      }
    }
    return Effect().none();
  }

  /**
   * A replica whose worker is unreachable or left the cluster is gone for us: route around it at
   * once (the next tick starts a replacement, see {@link #refill}); should the worker come back, the
   * old replica is stopped then.
   */
  private Effect<EndpointEvent, EndpointState> replaceLost(EndpointState s) {
    EndpointReplica gone = s.replicas().stream().filter(r -> !c.launcher().workerLive(r)).findFirst().orElse(null);
    if (gone == null) return refill(s);
    EndpointEvent e = event().setReplicaRemoved(EndpointReplicaRemoved.newBuilder().setUrl(gone.getUrl())
        .setReason("its worker " + gone.getWorkerId() + " became unreachable or left the cluster")).build();
    return Effect().persist(e).thenRun(ns -> {
      c.routing().set(name, ns.config(), ns.replicas());
      c.routing().forget(gone.getUrl());
      ctx.getLog().warn("endpoint {}: replica {} lost with worker {}", name, gone.getUrl(), gone.getWorkerId());
      c.launcher().stop(gone, "replaced: its worker was unreachable"); // if the worker comes back, so does the stop
    });
  }

  /**
   * A replica process can end while its worker lives (out of memory, killed): every few seconds the
   * replicas are pinged off the actor; one silent in two rounds in a row is removed and stopped, and
   * {@link #refill} starts its replacement. Two rounds, so that one busy moment is not a death.
   */
  private void checkHealth(EndpointState s) {
    if (checking || System.nanoTime() - lastHealth < HEALTH_EVERY || s.replicas().isEmpty()) return;
    checking = true;
    lastHealth = System.nanoTime();
    List<EndpointReplica> rs = List.copyOf(s.replicas());
    ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> rs.stream().filter(r -> !c.launcher().ping(r)).toList(), c.blocking()),
        (silent, err) -> new HealthChecked(silent == null ? List.of() : silent));
  }

  private Effect<EndpointEvent, EndpointState> onHealthChecked(EndpointState s, HealthChecked h) {
    checking = false;
    Set<String> silentNow = h.silent().stream().map(EndpointReplica::getUrl).collect(Collectors.toSet());
    silentRounds.keySet().retainAll(silentNow);
    silentNow.forEach(u -> silentRounds.merge(u, 1, Integer::sum));
    if (s.status() != EndpointState.Status.InService) return Effect().none();
    EndpointReplica dead = s.replicas().stream().filter(r -> silentRounds.getOrDefault(r.getUrl(), 0) >= 2).findFirst().orElse(null);
    if (dead == null) return Effect().none();
    silentRounds.remove(dead.getUrl());
    EndpointEvent e = event().setReplicaRemoved(EndpointReplicaRemoved.newBuilder().setUrl(dead.getUrl())
        .setReason("it stopped answering /ping on worker " + dead.getWorkerId())).build();
    return Effect().persist(e).thenRun(ns -> {
      c.routing().set(name, ns.config(), ns.replicas());
      c.routing().forget(dead.getUrl());
      ctx.getLog().warn("endpoint {}: replica {} stopped answering; replacing it", name, dead.getUrl());
      c.launcher().stop(dead, "stopped answering /ping");
    });
  }

  /** A variant below its instance count (a replica was lost) gets one more, at most every 10 s after a failure. */
  private Effect<EndpointEvent, EndpointState> refill(EndpointState s) {
    if (System.nanoTime() - lastRefillFailure < java.util.concurrent.TimeUnit.SECONDS.toNanos(10)) return null;
    for (EndpointVariant v : s.config().getVariantsList()) {
      long have = s.replicas().stream().filter(r -> r.getVariant().equals(v.getName())).count();
      if (have >= v.getInstances()) continue;
      scaling = true;
      long gen = s.generation();
      EndpointConfig config = s.config();
      ctx.getLog().info("endpoint {}: variant {} has {} of {} replicas: starting one", name, v.getName(), have, v.getInstances());
      ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> c.launcher().launchOne(name, gen, config, v), c.blocking()),
          (r, err) -> err == null ? new ScaledUp(gen, r) : new ScaleFailed(reason(err)));
      return Effect().none();
    }
    return null;
  }

  private Effect<EndpointEvent, EndpointState> onScaledUp(EndpointState s, ScaledUp u) {
    scaling = false;
    if (s.status() != EndpointState.Status.InService || u.generation() != s.generation()) {
      drainAndStop(List.of(u.replica()));
      return Effect().none();
    }
    EndpointEvent e = event().setReplicaAdded(EndpointReplicaAdded.newBuilder().setReplica(u.replica())
        .setReason(s.replicas().stream().filter(r -> r.getVariant().equals(u.replica().getVariant())).count()
            < variantInstances(s, u.replica().getVariant())
            ? "replacing a lost replica of variant " + u.replica().getVariant()
            : "variant " + u.replica().getVariant() + " above " + c.autoscale().targetInFlight() + " in flight per replica")).build();
    return Effect().persist(e).thenRun(ns -> c.routing().set(name, ns.config(), ns.replicas()));
  }

  private static int variantInstances(EndpointState s, String variant) {
    return s.config().getVariantsList().stream().filter(v -> v.getName().equals(variant)).mapToInt(EndpointVariant::getInstances)
        .findFirst().orElse(0);
  }

  private void launch(long gen, EndpointConfig config) {
    ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> c.launcher().launch(name, gen, config), c.blocking()),
        (rs, err) -> err == null ? new Launched(gen, rs) : new LaunchFailed(gen, reason(err)));
  }

  /** Waits (off the actor) until no request is in flight to each replica, then stops it. */
  private void drainAndStop(List<EndpointReplica> replicas) {
    if (replicas.isEmpty()) return;
    List<EndpointReplica> copy = new ArrayList<>(replicas);
    long deadline = System.nanoTime() + c.launcher().settings().drainTimeout().toNanos();
    c.blocking().execute(() -> {
      sleep(100); // a request that read the old routes just before the switch has counted itself by now
      for (EndpointReplica r : copy) {
        while (c.routing().inFlight(r.getUrl()) > 0 && System.nanoTime() < deadline) sleep(20);
        c.launcher().stop(r, "drained");
        c.routing().forget(r.getUrl());
      }
    });
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static String reason(Throwable t) {
    while (t instanceof java.util.concurrent.CompletionException && t.getCause() != null) t = t.getCause();
    return t.getMessage() != null ? t.getMessage() : t.toString();
  }

  private EndpointEvent.Builder event() {
    return EndpointEvent.newBuilder().setEndpoint(name).setTimestampMs(System.currentTimeMillis());
  }
}

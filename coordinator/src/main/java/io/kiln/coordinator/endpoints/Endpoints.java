package io.kiln.coordinator.endpoints;

import com.typesafe.config.Config;
import io.kiln.coordinator.registry.ModelRegistry;
import io.kiln.coordinator.registry.ModelVersion;
import io.kiln.coordinator.registry.RegistryException;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointVariant;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.pattern.StatusReply;

/**
 * Real-time endpoints as Java calls (the REST API uses it): resolves registry versions into model
 * folders, then asks the endpoint's entity. Refusals complete exceptionally with an
 * {@link EndpointException}.
 */
public final class Endpoints {
  private final ActorSystem<?> system;
  private final ActorRef<EndpointManager.Command> manager;
  private final ModelRegistry registry;
  private final RoutingTable routing;
  private final Duration timeout;

  private Endpoints(ActorSystem<?> system, ActorRef<EndpointManager.Command> manager, ModelRegistry registry,
                    RoutingTable routing, Duration timeout) {
    this.system = system;
    this.manager = manager;
    this.registry = registry;
    this.routing = routing;
    this.timeout = timeout;
  }

  /** Starts the endpoint manager on this node (it recovers every endpoint in the journal). */
  public static Endpoints start(ActorSystem<?> system, Config config, io.kiln.coordinator.hosting.WorkerHosts hosts, String token,
                                ModelRegistry registry, EndpointManager.IdSource ids, Duration timeout) {
    RoutingTable routing = new RoutingTable();
    ReplicaLauncher launcher = new ReplicaLauncher(ReplicaLauncher.Settings.of(config, token), hosts,
        system.dispatchers().lookup(DispatcherSelector.blocking()));
    Endpoint.Autoscale autoscale = new Endpoint.Autoscale(config.getDouble("kiln.endpoints.autoscale.target-in-flight"),
        config.getDuration("kiln.endpoints.autoscale.scale-up-after"), config.getDuration("kiln.endpoints.autoscale.scale-down-after"),
        config.getDuration("kiln.endpoints.autoscale.interval"));
    Endpoint.Context ctx = new Endpoint.Context(launcher, routing,
        system.dispatchers().lookup(DispatcherSelector.blocking()), autoscale);
    ActorRef<EndpointManager.Command> manager = system.systemActorOf(EndpointManager.create(ids, ctx), "endpoints", Props.empty());
    return new Endpoints(system, manager, registry, routing, timeout);
  }

  public RoutingTable routing() {
    return routing;
  }

  public CompletionStage<EndpointState> create(EndpointRequest r, String user) {
    return resolve(r).thenCompose(c -> ask(r.name(), ref -> new Endpoint.Create(c, user, ref)));
  }

  public CompletionStage<EndpointState> update(EndpointRequest r, String user) {
    return get(r.name()).thenCompose(s -> resolve(r)).thenCompose(c -> ask(r.name(), ref -> new Endpoint.Update(c, user, ref)));
  }

  public CompletionStage<EndpointState> delete(String name, String user) {
    if (!EndpointRequest.NAME.matcher(name).matches()) {
      return CompletableFuture.failedFuture(EndpointException.notFound("no endpoint " + name));
    }
    return ask(name, ref -> new Endpoint.Delete(user, ref));
  }

  /** The endpoint; NOT_FOUND when it never existed or was deleted. */
  public CompletionStage<EndpointState> get(String name) {
    if (!EndpointRequest.NAME.matcher(name).matches()) {
      return CompletableFuture.failedFuture(EndpointException.notFound("no endpoint " + name));
    }
    return entity(name).thenCompose(e -> AskPattern.<Endpoint.Command, EndpointState>ask(e, Endpoint.Get::new, timeout,
        system.scheduler())).thenApply(s -> {
          if (!s.live()) throw EndpointException.notFound("no endpoint " + name);
          return s;
        });
  }

  /** Every live endpoint, by name. */
  public CompletionStage<List<EndpointState>> list() {
    CompletionStage<List<String>> names = AskPattern.ask(manager, EndpointManager.Names::new, timeout, system.scheduler());
    return names.thenCompose(ns -> {
      List<CompletableFuture<EndpointState>> all = new ArrayList<>();
      for (String n : ns) all.add(get(n).toCompletableFuture().exceptionally(t -> null));
      return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new))
          .thenApply(v -> all.stream().map(CompletableFuture::join).filter(Objects::nonNull).toList());
    });
  }

  private CompletionStage<EndpointConfig> resolve(EndpointRequest r) {
    List<CompletableFuture<EndpointVariant>> vs = new ArrayList<>();
    for (EndpointRequest.Variant v : r.variants()) vs.add(resolve(v).toCompletableFuture());
    return CompletableFuture.allOf(vs.toArray(CompletableFuture[]::new)).thenApply(x -> {
      EndpointConfig.Builder b = EndpointConfig.newBuilder().setIdleTimeoutMs(r.idleTimeoutMs())
          .setMaxConcurrency(r.maxConcurrency()).setCaptureUri(r.captureUri()).setCapturePercent(r.capturePercent())
          .setMemoryMb(r.memoryMb());
      vs.forEach(f -> b.addVariants(f.join()));
      return b.build();
    }).exceptionallyCompose(t -> CompletableFuture.failedFuture(translate(t)));
  }

  private CompletionStage<EndpointVariant> resolve(EndpointRequest.Variant v) {
    EndpointVariant.Builder b = EndpointVariant.newBuilder().setName(v.name()).setWeight(v.weight())
        .setInstances(v.instances()).setMaxInstances(v.maxInstances()).setMultiModel(v.multiModel());
    if (v.modelGroup().isEmpty()) return CompletableFuture.completedFuture(b.setModelUri(v.modelUri()).build());
    CompletionStage<ModelVersion> mv = v.version() > 0 ? registry.version(v.modelGroup(), v.version())
        : registry.latestApproved(v.modelGroup());
    return mv.thenApply(m -> b.setModelUri(m.pkg().getArtifactUri()).setModelGroup(m.group()).setModelVersion(m.version()).build());
  }

  private static Throwable translate(Throwable t) {
    while (t instanceof CompletionException && t.getCause() != null) t = t.getCause();
    if (t instanceof RegistryException r) {
      return new EndpointException(r.kind() == RegistryException.Kind.NOT_FOUND ? EndpointException.Kind.NOT_FOUND
          : EndpointException.Kind.INVALID, r.getMessage());
    }
    return t;
  }

  private CompletionStage<ActorRef<Endpoint.Command>> entity(String name) {
    return AskPattern.ask(manager, r -> new EndpointManager.Entity(name, r), timeout, system.scheduler());
  }

  private CompletionStage<EndpointState> ask(String name,
                                             org.apache.pekko.japi.function.Function<ActorRef<StatusReply<EndpointState>>, Endpoint.Command> msg) {
    return entity(name).thenCompose(e -> AskPattern.askWithStatus(e, msg, timeout, system.scheduler()));
  }
}

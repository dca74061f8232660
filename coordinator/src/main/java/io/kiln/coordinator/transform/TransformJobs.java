package io.kiln.coordinator.transform;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.coordinator.endpoints.EndpointException;
import io.kiln.coordinator.endpoints.EndpointRequest;
import io.kiln.coordinator.registry.ModelRegistry;
import io.kiln.coordinator.registry.ModelVersion;
import io.kiln.coordinator.registry.RegistryException;
import io.kiln.protocol.proto.TransformJobConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * Batch transform jobs as Java calls (the REST API uses it): validates a request, resolves a registry
 * version into a model folder and asks the job's entity. One entity per job name on this node; at
 * start every job in the journal is recovered (one in progress resumes its unfinished splits).
 */
public final class TransformJobs {
  private final ActorSystem<?> system;
  private final ModelRegistry registry;
  private final TransformJob.Context context;
  private final Duration timeout;
  private final Map<String, ActorRef<TransformJob.Command>> entities = new ConcurrentSkipListMap<>();

  public interface IdSource extends Supplier<Source<String, NotUsed>> {}

  private TransformJobs(ActorSystem<?> system, ModelRegistry registry, TransformJob.Context context, Duration timeout) {
    this.system = system;
    this.registry = registry;
    this.context = context;
    this.timeout = timeout;
  }

  public static TransformJobs start(ActorSystem<?> system, Config config, io.kiln.coordinator.hosting.WorkerHosts hosts,
                                    ModelRegistry registry, IdSource ids, Duration timeout) {
    TransformJob.Context ctx = new TransformJob.Context(new SplitRunner(SplitRunner.Settings.of(config), hosts),
        system.dispatchers().lookup(DispatcherSelector.blocking()));
    TransformJobs t = new TransformJobs(system, registry, ctx, timeout);
    String prefix = TransformJob.ENTITY_TYPE + "|";
    ids.get().filter(id -> id.startsWith(prefix)).map(id -> id.substring(prefix.length())).runWith(Sink.seq(), system)
        .thenAccept(names -> names.forEach(t::entity));
    return t;
  }

  private synchronized ActorRef<TransformJob.Command> entity(String name) {
    return entities.computeIfAbsent(name, n -> system.systemActorOf(TransformJob.create(n, context), "transform-" + n, Props.empty()));
  }

  /** Parses and validates a request body; INVALID with the field at fault. */
  public CompletionStage<TransformState> create(JsonNode b, String user) {
    try {
      String name = b.path("name").asText("");
      if (name.isEmpty()) name = "transform-" + System.currentTimeMillis();
      if (!EndpointRequest.NAME.matcher(name).matches()) throw EndpointException.invalid("name '" + name + "' is invalid (1-63 letters, digits, '-')");
      String input = b.path("input").asText("");
      if (input.isEmpty()) throw EndpointException.invalid("input is required (a file or folder)");
      Path in = input.startsWith("file:") ? Path.of(java.net.URI.create(input)) : Path.of(input).toAbsolutePath();
      String output = b.path("output").asText("");
      Path out = !output.isEmpty() ? (output.startsWith("file:") ? Path.of(java.net.URI.create(output)) : Path.of(output).toAbsolutePath())
          : java.nio.file.Files.isDirectory(in) ? in : in.getParent();
      int splits = b.path("splits").asInt(2);
      int maxRetries = b.path("maxRetries").asInt(2);
      if (splits < 1 || splits > 64) throw EndpointException.invalid("splits must be 1..64; got " + splits);
      if (maxRetries < 0 || maxRetries > 10) throw EndpointException.invalid("maxRetries must be 0..10; got " + maxRetries);
      String ct = b.path("contentType").asText("");
      if (!ct.isEmpty() && !List.of("text/csv", "application/jsonlines", "idx").contains(ct)) {
        throw EndpointException.invalid("contentType must be text/csv, application/jsonlines or idx; got " + ct);
      }
      TransformJobConfig.Builder c = TransformJobConfig.newBuilder().setInput(in.toString()).setOutput(out.toString())
          .setContentType(ct).setSplits(splits).setMaxRetries(maxRetries);
      String modelUri = b.path("modelUri").asText("");
      String group = b.path("modelGroup").asText("");
      if (modelUri.isEmpty() == group.isEmpty()) throw EndpointException.invalid("give exactly one of modelUri or modelGroup");
      CompletionStage<TransformJobConfig> cfg;
      if (!modelUri.isEmpty()) {
        cfg = CompletableFuture.completedFuture(c.setModelUri(modelUri).build());
      } else {
        JsonNode v = b.path("version");
        CompletionStage<ModelVersion> mv = v.isInt() ? registry.version(group, v.asInt()) : registry.latestApproved(group);
        cfg = mv.thenApply(m -> c.setModelUri(m.pkg().getArtifactUri()).setModelGroup(m.group()).setModelVersion(m.version()).build());
      }
      String n = name;
      return cfg.exceptionallyCompose(t -> CompletableFuture.failedFuture(translate(t)))
          .thenCompose(conf -> AskPattern.askWithStatus(entity(n), r -> new TransformJob.Create(conf, user, r), timeout, system.scheduler()));
    } catch (EndpointException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  public CompletionStage<TransformState> get(String name) {
    if (!entities.containsKey(name)) return CompletableFuture.failedFuture(EndpointException.notFound("no transform job " + name));
    return AskPattern.<TransformJob.Command, TransformState>ask(entity(name), TransformJob.Get::new, timeout, system.scheduler())
        .thenApply(s -> {
          if (!s.exists) throw EndpointException.notFound("no transform job " + name);
          return s;
        });
  }

  public CompletionStage<List<TransformState>> list() {
    List<CompletableFuture<TransformState>> all = new ArrayList<>();
    for (String n : entities.keySet()) all.add(get(n).toCompletableFuture().exceptionally(t -> null));
    return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new))
        .thenApply(v -> all.stream().map(CompletableFuture::join).filter(java.util.Objects::nonNull).toList());
  }

  private static Throwable translate(Throwable t) {
    while (t instanceof CompletionException && t.getCause() != null) t = t.getCause();
    if (t instanceof RegistryException r) {
      return new EndpointException(r.kind() == RegistryException.Kind.NOT_FOUND ? EndpointException.Kind.NOT_FOUND
          : EndpointException.Kind.INVALID, r.getMessage());
    }
    return t;
  }

  /** The JSON view of a job. */
  public static ObjectNode view(TransformState s, boolean detail) {
    ObjectNode n = ApiJson.obj();
    n.put("name", s.name).put("status", s.status.name()).put("rowsDone", s.rowsDone).put("rowsFailed", s.rowsFailed)
        .put("modelUri", s.config.getModelUri()).put("input", s.config.getInput()).put("output", s.config.getOutput())
        .put("splits", s.config.getSplits()).put("maxRetries", s.config.getMaxRetries()).put("createdBy", s.createdBy)
        .put("createdMs", s.createdMs);
    if (!s.config.getModelGroup().isEmpty()) n.put("modelGroup", s.config.getModelGroup()).put("modelVersion", s.config.getModelVersion());
    if (!s.reason.isEmpty()) n.put("failureReason", s.reason);
    if (s.endedMs > 0) n.put("endedMs", s.endedMs);
    if (detail) {
      ArrayNode sp = n.putArray("splitDetails");
      s.splits.forEach((i, x) -> {
        ObjectNode o = sp.addObject().put("split", i).put("attempts", x.attempts).put("failures", x.failures).put("done", x.done)
            .put("rowsDone", x.rowsDone).put("rowsFailed", x.rowsFailed).put("worker", x.worker);
        if (!x.lastError.isEmpty()) o.put("lastError", x.lastError);
      });
      ArrayNode outs = n.putArray("outputs");
      s.outputs.forEach(outs::add);
      ArrayNode h = n.putArray("history");
      s.history.forEach(h::add);
    }
    return n;
  }
}

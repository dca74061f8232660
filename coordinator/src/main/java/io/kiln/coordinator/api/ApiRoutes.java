package io.kiln.coordinator.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.jobs.JobManager;
import io.kiln.coordinator.jobs.JobState;
import io.kiln.coordinator.jobs.JobViews;
import io.kiln.coordinator.scheduling.Scheduler;
import io.kiln.coordinator.telemetry.JobTelemetry;
import io.kiln.protocol.proto.JobSpec;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.marshalling.sse.EventStreamMarshalling;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.sse.ServerSentEvent;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.ExceptionHandler;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.RejectionHandler;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.javadsl.Source;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST API (docs/api.md): authentication, validation, JSON shapes and server-sent events.
 * Talks to the job manager by ask; never touches job state itself.
 */
public final class ApiRoutes extends AllDirectives {
  private static final Logger log = LoggerFactory.getLogger(ApiRoutes.class);
  /** One user until roles and projects come: the holder of the local token. */
  private static final String LOCAL_USER = "local-admin";

  private final ActorSystem<?> system;
  private final ActorRef<JobManager.Command> jobs;
  private final JobTelemetry telemetry;
  private final ApiToken token;
  private final Duration askTimeout;
  private final List<ApiExtension> extensions;

  public ApiRoutes(ActorSystem<?> system, ActorRef<JobManager.Command> jobs, JobTelemetry telemetry, ApiToken token,
                   Duration askTimeout) {
    this(system, jobs, telemetry, token, askTimeout, List.of());
  }

  public ApiRoutes(ActorSystem<?> system, ActorRef<JobManager.Command> jobs, JobTelemetry telemetry, ApiToken token,
                   Duration askTimeout, List<ApiExtension> extensions) {
    this.extensions = List.copyOf(extensions);
    this.system = system;
    this.jobs = jobs;
    this.telemetry = telemetry;
    this.token = token;
    this.askTimeout = askTimeout;
  }

  public Route routes() {
    Route inner = concat(
        pathPrefix("health", () -> concat(
            path("live", () -> get(() -> json(StatusCodes.OK, obj().put("status", "live")))),
            path("ready", () -> get(this::ready)))),
        pathPrefix(PathMatchers.segment("api").slash("v1"), () -> authenticated(user -> concat(
            extensionRoutes(user),
            path("cluster", () -> get(this::cluster)),
            pathPrefix("training-jobs", () -> concat(
                pathEndOrSingleSlash(() -> concat(
                    post(() -> entity(Unmarshaller.entityToString(), body -> submit(body, user))),
                    get(this::list))),
                pathPrefix(PathMatchers.segment(), id -> concat(
                    pathEndOrSingleSlash(() -> get(() -> describe(id))),
                    path("stop", () -> post(() -> stop(id))),
                    path("logs", () -> get(() -> parameterOptional("follow", f -> stream(id, JobTelemetry.Stream.LOGS, isTrue(f))))),
                    path("metrics", () -> get(() -> parameterOptional("follow", f -> stream(id, JobTelemetry.Stream.METRICS, isTrue(f)))))))))))),
        rootExtensionRoutes());
    return handleExceptions(exceptionHandler(), () -> handleRejections(rejectionHandler(), () -> inner));
  }

  private Route extensionRoutes(String user) {
    Route all = reject();
    for (ApiExtension e : extensions) all = concat(all, e.routes(user));
    return all;
  }

  private Route rootExtensionRoutes() {
    Route all = reject();
    for (ApiExtension e : extensions) {
      if (e.rootPrefix() != null) all = concat(all, pathPrefix(e.rootPrefix(), () -> authenticated(e::rootRoutes)));
    }
    return all;
  }

  private Route authenticated(java.util.function.Function<String, Route> inner) {
    return optionalHeaderValueByName("Authorization", h -> {
      if (token.accepts(h.orElse(null))) return inner.apply(LOCAL_USER);
      return json(StatusCodes.UNAUTHORIZED, error(ApiToken.refusal(h.orElse(null)), List.of()));
    });
  }

  private Route ready() {
    CompletionStage<Boolean> ready = AskPattern.<JobManager.Command, Boolean>ask(jobs, JobManager.IsReady::new, Duration.ofSeconds(3), system.scheduler())
        .exceptionally(e -> false);
    CompletionStage<List<Scheduler.WorkerView>> workers = askWorkers().exceptionally(e -> List.of());
    return onSuccess(ready.thenCombine(workers, Pair::create), p -> p.first()
        ? json(StatusCodes.OK, obj().put("status", "ready").put("workers", p.second().size()))
        : json(StatusCodes.SERVICE_UNAVAILABLE, obj().put("status", "recovering").put("workers", p.second().size())));
  }

  private Route cluster() {
    return onSuccess(askWorkers(), workers -> {
      ObjectNode n = obj();
      ArrayNode arr = n.putArray("workers");
      for (Scheduler.WorkerView w : workers) {
        ObjectNode o = arr.addObject();
        o.put("id", w.id()).put("address", w.address()).put("cpus", w.cpus()).put("memoryMb", w.memoryMb())
            .put("gpus", w.gpus()).put("freeCpus", w.freeCpus()).put("freeGpus", w.freeGpus());
        ArrayNode t = o.putArray("runningTasks");
        w.jobs().forEach(t::add);
      }
      return json(StatusCodes.OK, n);
    });
  }

  private Route submit(String body, String user) {
    JobSpec spec;
    try {
      spec = JobSpecs.parse(body);
    } catch (InvalidSpecException e) {
      return json(StatusCodes.BAD_REQUEST, error(e.getMessage().split(":")[0], e.details()));
    }
    CompletionStage<JobState> created = AskPattern.<JobManager.Command, StatusReply<JobState>>ask(
            jobs, r -> new JobManager.Submit(spec, user, r), askTimeout, system.scheduler())
        .thenApply(StatusReply::getValue);
    return onSuccess(created, s -> {
      log.info("job {} submitted by {}", s.jobId(), user);
      return json(StatusCodes.CREATED, JobViews.view(s, null, null, true));
    });
  }

  private Route list() {
    CompletionStage<List<JobState>> all = AskPattern.ask(jobs, JobManager.ListJobs::new, askTimeout, system.scheduler());
    return onSuccess(all, states -> {
      ObjectNode n = obj();
      ArrayNode arr = n.putArray("jobs");
      for (JobState s : states) arr.add(JobViews.view(s, telemetry.latestProgress(s.jobId()), null, false));
      return json(StatusCodes.OK, n);
    });
  }

  private Route describe(String id) {
    return onSuccess(getJob(id), job -> {
      if (job.isEmpty()) return notFound(id);
      JobState s = job.get();
      return onSuccess(queueReason(s), reason -> json(StatusCodes.OK,
          JobViews.view(s, telemetry.latestProgress(id), reason.orElse(null), true)));
    });
  }

  private Route stop(String id) {
    CompletionStage<StatusReply<JobState>> r = AskPattern.ask(jobs, reply -> new JobManager.Stop(id, "stopped by user", reply),
        askTimeout, system.scheduler());
    return onSuccess(r, reply -> {
      if (reply.isSuccess()) return json(StatusCodes.ACCEPTED, JobViews.view(reply.getValue(), telemetry.latestProgress(id), null, true));
      String msg = reply.getError().getMessage();
      return msg.startsWith("no job") ? notFound(id) : json(StatusCodes.CONFLICT, error(msg, List.of()));
    });
  }

  private Route stream(String id, JobTelemetry.Stream which, boolean follow) {
    return onSuccess(getJob(id), job -> {
      if (job.isEmpty()) return notFound(id);
      String fin = job.get().status().isFinal() ? job.get().status().name() : null;
      Pair<BoundedSourceQueue<JobTelemetry.Event>, Source<JobTelemetry.Event, NotUsed>> live =
          Source.<JobTelemetry.Event>queue(4096).preMaterialize(system);
      BoundedSourceQueue<JobTelemetry.Event> queue = live.first();
      JobTelemetry.Subscription sub = telemetry.subscribe(id, which, follow, fin, e -> {
        queue.offer(e);
        if (e.type().equals("end")) queue.complete();
      });
      if (sub.ended()) queue.complete();
      Source<ServerSentEvent, NotUsed> events = Source.from(sub.backlog()).concat(live.second())
          .map(e -> ServerSentEvent.create(e.json(), e.type()))
          .keepAlive(Duration.ofSeconds(15), ServerSentEvent::heartbeat)
          .watchTermination((mat, done) -> {
            done.whenComplete((d, err) -> sub.cancel().run());
            return NotUsed.getInstance();
          });
      return completeOK(events, EventStreamMarshalling.toEventStream());
    });
  }

  private CompletionStage<Optional<JobState>> getJob(String id) {
    return AskPattern.ask(jobs, r -> new JobManager.Get(id, r), askTimeout, system.scheduler());
  }

  private CompletionStage<Optional<String>> queueReason(JobState s) {
    if (s.status() != io.kiln.coordinator.jobs.JobStatus.Pending) return CompletableFuture.completedFuture(Optional.empty());
    return AskPattern.ask(jobs, r -> new JobManager.GetQueueReason(s.jobId(), r), askTimeout, system.scheduler());
  }

  private CompletionStage<List<Scheduler.WorkerView>> askWorkers() {
    return AskPattern.ask(jobs, JobManager.ListWorkers::new, askTimeout, system.scheduler());
  }

  private Route notFound(String id) {
    return json(StatusCodes.NOT_FOUND, error("no job " + id, List.of()));
  }

  private static boolean isTrue(Optional<String> flag) {
    return flag.map(v -> v.isEmpty() || v.equalsIgnoreCase("true") || v.equals("1")).orElse(false);
  }

  private ExceptionHandler exceptionHandler() {
    return ExceptionHandler.newBuilder()
        .match(java.util.concurrent.TimeoutException.class, e ->
            json(StatusCodes.SERVICE_UNAVAILABLE, error("the coordinator did not answer in time; try again", List.of())))
        .match(Throwable.class, e -> {
          Throwable cause = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
          if (cause instanceof java.util.concurrent.TimeoutException) {
            return json(StatusCodes.SERVICE_UNAVAILABLE, error("the coordinator did not answer in time; try again", List.of()));
          }
          log.error("request failed", cause);
          return json(StatusCodes.INTERNAL_SERVER_ERROR, error("internal error: " + cause.getMessage(), List.of()));
        })
        .build();
  }

  private RejectionHandler rejectionHandler() {
    // Pekko's own messages, but as the JSON error shape every client of this API expects.
    return RejectionHandler.defaultHandler().mapRejectionResponse(resp -> {
      if (resp.entity().getContentType().equals(ContentTypes.APPLICATION_JSON)) return resp;
      String text = resp.entity() instanceof org.apache.pekko.http.javadsl.model.HttpEntity.Strict s
          ? s.getData().utf8String() : resp.status().reason();
      return resp.withEntity(ContentTypes.APPLICATION_JSON, error(text, List.of()).toString());
    });
  }

  private Route json(StatusCode status, ObjectNode body) {
    return complete(ApiJson.response(status, body));
  }

  private static ObjectNode obj() {
    return ApiJson.obj();
  }

  static ObjectNode error(String message, List<String> details) {
    return ApiJson.error(message, details);
  }
}

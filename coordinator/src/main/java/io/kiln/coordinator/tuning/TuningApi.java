package io.kiln.coordinator.tuning;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.coordinator.api.InvalidSpecException;
import io.kiln.coordinator.jobs.JobManager;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TuningSpec;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.apache.pekko.pattern.StatusReply;

/**
 * The tuning jobs' REST API (docs/api.md#tuning-jobs): {@code /api/v1/tuning-jobs}. Also starts the
 * {@link TuningManager} singleton, so that the coordinator registers tuning with one line.
 */
public final class TuningApi extends AllDirectives implements ApiExtension {
  private final ActorSystem<?> system;
  private final ActorRef<TuningManager.Command> tuning;
  private final Duration askTimeout;

  public TuningApi(ActorSystem<?> system, ActorRef<TuningManager.Command> tuning, Duration askTimeout) {
    this.system = system;
    this.tuning = tuning;
    this.askTimeout = askTimeout;
  }

  /** Starts the tuning manager (a cluster singleton on the coordinator role) and returns its API. */
  public static TuningApi start(ActorSystem<?> system, Config config, ActorRef<JobManager.Command> jobs,
                                JobManager.JobIdSource ids, Function<String, Progress> liveProgress) {
    Duration askTimeout = config.getDuration("kiln.api.ask-timeout");
    TuningManager.Settings settings = new TuningManager.Settings(config.getDuration("kiln.tuning.poll-interval"), askTimeout);
    ActorRef<TuningManager.Command> ref = ClusterSingleton.get(system).init(
        SingletonActor.of(TuningManager.create(ids, jobs, liveProgress, settings), "tuning-manager")
            .withSettings(ClusterSingletonSettings.create(system).withRole("coordinator")));
    return new TuningApi(system, ref, askTimeout);
  }

  @Override
  public Route routes(String user) {
    return pathPrefix("tuning-jobs", () -> concat(
        pathEndOrSingleSlash(() -> concat(
            post(() -> entity(Unmarshaller.entityToString(), body -> submit(body, user))),
            get(this::list))),
        pathPrefix(PathMatchers.segment(), id -> concat(
            pathEndOrSingleSlash(() -> get(() -> describe(id))),
            path("stop", () -> post(() -> stop(id)))))));
  }

  private Route submit(String body, String user) {
    TuningSpec spec;
    try {
      spec = TuningSpecs.parse(body);
    } catch (InvalidSpecException e) {
      return json(StatusCodes.BAD_REQUEST, ApiJson.error(e.getMessage().split(":")[0], e.details()));
    }
    CompletionStage<StatusReply<TuningState>> r = AskPattern.ask(tuning, reply -> new TuningManager.Submit(spec, user, reply),
        askTimeout, system.scheduler());
    return onSuccess(r, reply -> reply.isSuccess()
        ? json(StatusCodes.CREATED, TuningViews.view(reply.getValue(), true))
        : json(StatusCodes.BAD_REQUEST, ApiJson.error("invalid tuning job spec", List.of(reply.getError().getMessage()))));
  }

  private Route list() {
    CompletionStage<List<TuningState>> all = AskPattern.ask(tuning, TuningManager.ListTuningJobs::new, askTimeout, system.scheduler());
    return onSuccess(all, states -> {
      ObjectNode n = ApiJson.obj();
      ArrayNode arr = n.putArray("tuningJobs");
      for (TuningState s : states) arr.add(TuningViews.view(s, false));
      return json(StatusCodes.OK, n);
    });
  }

  private Route describe(String id) {
    CompletionStage<Optional<TuningState>> s = AskPattern.ask(tuning, r -> new TuningManager.Get(id, r), askTimeout, system.scheduler());
    return onSuccess(s, st -> st.isPresent() ? json(StatusCodes.OK, TuningViews.view(st.get(), true)) : notFound(id));
  }

  private Route stop(String id) {
    CompletionStage<StatusReply<TuningState>> r = AskPattern.ask(tuning, reply -> new TuningManager.Stop(id, "stopped by user", reply),
        askTimeout, system.scheduler());
    return onSuccess(r, reply -> {
      if (reply.isSuccess()) return json(StatusCodes.ACCEPTED, TuningViews.view(reply.getValue(), true));
      String msg = reply.getError().getMessage();
      return msg.startsWith("no tuning job") ? notFound(id) : json(StatusCodes.CONFLICT, ApiJson.error(msg, List.of()));
    });
  }

  private Route notFound(String id) {
    return json(StatusCodes.NOT_FOUND, ApiJson.error("no tuning job " + id, List.of()));
  }

  private Route json(StatusCode status, ObjectNode body) {
    return complete(ApiJson.response(status, body));
  }
}

package io.kiln.coordinator.transform;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.coordinator.endpoints.EndpointException;
import io.kiln.coordinator.endpoints.EndpointRoutes;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;

/** {@code /api/v1/transform-jobs[/{name}]}: POST create, GET list / describe. */
public final class TransformRoutes extends AllDirectives implements ApiExtension {
  private final TransformJobs jobs;

  public TransformRoutes(TransformJobs jobs) {
    this.jobs = jobs;
  }

  @Override
  public Route routes(String user) {
    return pathPrefix("transform-jobs", () -> concat(
        pathEndOrSingleSlash(() -> concat(
            post(() -> entity(Unmarshaller.entityToString(), s -> {
              JsonNode b;
              try {
                b = s.isBlank() ? ApiJson.obj() : ApiJson.MAPPER.readTree(s);
              } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                return EndpointRoutes.failure(EndpointException.invalid("the body is not valid JSON: " + e.getOriginalMessage()));
              }
              return answer(jobs.create(b, user), StatusCodes.ACCEPTED, st -> TransformJobs.view(st, true));
            })),
            get(() -> answer(jobs.list(), StatusCodes.OK, all -> {
              ObjectNode n = ApiJson.obj();
              ArrayNode arr = n.putArray("transformJobs");
              all.forEach(st -> arr.add(TransformJobs.view(st, false)));
              return n;
            })))),
        path(PathMatchers.segment(), name -> get(() -> answer(jobs.get(name), StatusCodes.OK, st -> TransformJobs.view(st, true))))));
  }

  private <T> Route answer(CompletionStage<T> result, StatusCode ok, Function<T, ObjectNode> view) {
    return onComplete(result, t -> {
      if (t.isSuccess()) return complete(ApiJson.response(ok, view.apply(t.get())));
      Throwable e = t.failed().get();
      while (e instanceof CompletionException && e.getCause() != null) e = e.getCause();
      if (e instanceof EndpointException r) return EndpointRoutes.failure(r);
      throw e instanceof RuntimeException re ? re : new CompletionException(e);
    });
  }
}

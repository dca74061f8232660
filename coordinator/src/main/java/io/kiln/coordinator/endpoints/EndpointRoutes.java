package io.kiln.coordinator.endpoints;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiJson;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Endpoints in the REST API: {@code /api/v1/endpoints[/{name}]} (POST create, GET list/describe,
 * PUT update = blue/green, DELETE), and the router {@code /endpoints/{name}/...} on the API port ({@link InvocationRouter}).
 */
public final class EndpointRoutes extends AllDirectives implements ApiExtension {
  private static final Logger log = LoggerFactory.getLogger(EndpointRoutes.class);
  private final Endpoints endpoints;
  private final InvocationRouter router;
  private final String dataPlaneUrl;

  /** {@code dataPlaneUrl}: the base URL of the data-plane listener, shown in each endpoint's {@code invocationUrl}. */
  public EndpointRoutes(Endpoints endpoints, InvocationRouter router, String dataPlaneUrl) {
    this.endpoints = endpoints;
    this.router = router;
    this.dataPlaneUrl = dataPlaneUrl;
  }

  private ObjectNode view(EndpointState s, boolean full) {
    return EndpointViews.endpoint(s, endpoints.routing(), dataPlaneUrl, full);
  }

  @Override
  public Route routes(String user) {
    return pathPrefix("endpoints", () -> concat(
        pathEndOrSingleSlash(() -> concat(
            post(() -> body(b -> answer(call(() -> endpoints.create(EndpointRequest.parse(b, null), user)),
                StatusCodes.ACCEPTED, s -> {
                  log.info("endpoint {} created by {}", s.name(), user);
                  return view(s, true);
                }))),
            get(() -> answer(endpoints.list(), StatusCodes.OK, all -> {
              ObjectNode n = ApiJson.obj();
              ArrayNode arr = n.putArray("endpoints");
              all.forEach(s -> arr.add(view(s, false)));
              return n;
            })))),
        path(PathMatchers.segment(), name -> concat(
            get(() -> answer(endpoints.get(name), StatusCodes.OK, s -> view(s, true))),
            put(() -> body(b -> answer(call(() -> endpoints.update(EndpointRequest.parse(b, name), user)),
                StatusCodes.ACCEPTED, s -> view(s, true)))),
            delete(() -> answer(endpoints.delete(name, user), StatusCodes.OK, s -> {
              log.info("endpoint {} deleted by {}", name, user);
              return view(s, true);
            }))))));
  }

  @Override
  public String rootPrefix() {
    return "endpoints";
  }

  @Override
  public Route rootRoutes(String user) {
    return router.route();
  }

  private static <T> CompletionStage<T> call(java.util.function.Supplier<CompletionStage<T>> s) {
    try {
      return s.get();
    } catch (EndpointException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  private Route body(Function<JsonNode, Route> inner) {
    return entity(Unmarshaller.entityToString(), s -> {
      JsonNode n;
      try {
        n = s.isBlank() ? ApiJson.obj() : ApiJson.MAPPER.readTree(s);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        return failure(EndpointException.invalid("the body is not valid JSON: " + e.getOriginalMessage()));
      }
      return inner.apply(n);
    });
  }

  private <T> Route answer(CompletionStage<T> result, StatusCode ok, Function<T, ObjectNode> view) {
    return onComplete(result, t -> {
      if (t.isSuccess()) return complete(ApiJson.response(ok, view.apply(t.get())));
      Throwable e = t.failed().get();
      while (e instanceof CompletionException && e.getCause() != null) e = e.getCause();
      if (e instanceof EndpointException r) return failure(r);
      throw e instanceof RuntimeException re ? re : new CompletionException(e);
    });
  }

  public static Route failure(EndpointException e) {
    StatusCode code = switch (e.kind()) {
      case INVALID -> StatusCodes.BAD_REQUEST;
      case NOT_FOUND -> StatusCodes.NOT_FOUND;
      case CONFLICT -> StatusCodes.CONFLICT;
    };
    return org.apache.pekko.http.javadsl.server.Directives.complete(ApiJson.response(code, ApiJson.error(e.getMessage(), List.of())));
  }
}

package io.kiln.coordinator.endpoints;

import io.kiln.coordinator.api.ApiJson;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.event.LoggingAdapter;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.model.HttpEntity;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.settings.ConnectionPoolSettings;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.StreamTcpException;

/**
 * The data plane on the coordinator's port: {@code /endpoints/{name}/invocations} and
 * {@code /endpoints/{name}/v2/...} (OIP) go to one replica: of the variant named by
 * {@code X-Kiln-Target-Variant}, else of a variant drawn by weight; round robin among its replicas.
 * 503 when no replica is ready; the answer names the variant in {@code X-Kiln-Variant}. The
 * replica sees the coordinator's token (the caller was authenticated with it already).
 */
public final class InvocationRouter extends AllDirectives {
  private static final Set<String> FORWARDED = Set.of("accept", "x-kiln-target-model", "x-amzn-sagemaker-target-model");
  private static final Duration RESPONSE_TIMEOUT = Duration.ofSeconds(60);

  private final Endpoints endpoints;
  private final String token;
  private final Http http;
  private final ConnectionPoolSettings pool;
  private final LoggingAdapter log;
  private final Materializer mat;

  public InvocationRouter(ActorSystem<?> system, Endpoints endpoints, String token, int maxConnections, int maxOpenRequests) {
    this.endpoints = endpoints;
    this.token = token;
    this.http = Http.get(system);
    this.pool = ConnectionPoolSettings.create(Adapter.toClassic(system)).withMaxConnections(maxConnections)
        .withMaxOpenRequests(Integer.highestOneBit(maxOpenRequests));
    this.log = Adapter.toClassic(system).log();
    this.mat = Materializer.matFromSystem(system);
  }

  Route route() {
    return pathPrefix(PathMatchers.segment(), name -> extractUnmatchedPath(rest -> {
      if (!rest.equals("/invocations") && !rest.startsWith("/v2/") && !rest.equals("/v2")) {
        return complete(ApiJson.response(StatusCodes.NOT_FOUND, ApiJson.error("no route " + rest + " on endpoint "
            + name + " (POST /endpoints/{name}/invocations, /endpoints/{name}/v2/models/{model}/infer)", List.of())));
      }
      return extractRequest(req -> optionalHeaderValueByName("X-Kiln-Target-Variant", variant -> forward(name, rest, req, variant)));
    }));
  }

  private Route forward(String name, String rest, HttpRequest req, Optional<String> variant) {
    Optional<RoutingTable.Lease> lease;
    try {
      lease = endpoints.routing().acquire(name, variant.orElse(null));
    } catch (IllegalArgumentException e) {
      return complete(ApiJson.response(StatusCodes.BAD_REQUEST, ApiJson.error(e.getMessage(), List.of())));
    }
    if (lease.isEmpty()) {
      return onComplete(endpoints.get(name), t -> t.isSuccess()
          ? complete(ApiJson.response(StatusCodes.SERVICE_UNAVAILABLE, ApiJson.error("endpoint " + name + " has no ready replica (status "
              + t.get().status() + (t.get().failureReason().isEmpty() ? "" : ": " + t.get().failureReason()) + ")", List.of())))
          : complete(ApiJson.response(StatusCodes.NOT_FOUND, ApiJson.error("no endpoint " + name, List.of()))));
    }
    String query = req.getUri().rawQueryString().map(q -> "?" + q).orElse("");
    // the body is read once, so that a request whose replica refused the connection can go to another
    CompletionStage<HttpResponse> answer = req.entity().toStrict(RESPONSE_TIMEOUT.toMillis(), mat)
        .thenCompose(body -> send(name, rest + query, req, body, lease.get(), variant.orElse(null), true));
    return onComplete(answer, t -> t.isSuccess() ? complete(t.get())
        : complete(ApiJson.response(StatusCodes.BAD_GATEWAY, ApiJson.error("endpoint " + name + ": "
            + t.failed().get().getMessage(), List.of()))));
  }

  /**
   * One attempt on the replica of {@code l}; when the connection itself failed (the replica is gone:
   * its worker died, it is being replaced) and another replica is there, one more attempt on it. The
   * request never reached the model then, so trying again cannot predict twice.
   */
  private CompletionStage<HttpResponse> send(String name, String pathAndQuery, HttpRequest req, HttpEntity.Strict body,
                                             RoutingTable.Lease l, String variant, boolean mayRetry) {
    HttpRequest out = HttpRequest.create(l.target().url() + pathAndQuery).withMethod(req.method()).withEntity(body)
        .addHeader(RawHeader.create("Authorization", "Bearer " + token));
    for (HttpHeader h : req.getHeaders()) if (FORWARDED.contains(h.name().toLowerCase(java.util.Locale.ROOT))) out = out.addHeader(h);
    return http.singleRequest(out, http.defaultClientHttpsContext(), pool, log)
        .thenCompose(r -> r.entity().toStrict(RESPONSE_TIMEOUT.toMillis(), mat).thenApply(e -> r.withEntity(e)))
        .handle((r, e) -> {
          l.close();
          if (e == null) {
            return CompletableFuture.completedFuture(r.addHeader(RawHeader.create("X-Kiln-Variant", l.target().variant())));
          }
          Throwable cause = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
          Optional<RoutingTable.Lease> next = mayRetry && cause instanceof StreamTcpException
              ? endpoints.routing().acquire(name, variant) : Optional.empty();
          if (next.isPresent() && !next.get().target().url().equals(l.target().url())) {
            log.warning("endpoint {}: replica {} refused the connection ({}); retrying on {}", name, l.target().url(),
                cause.getMessage(), next.get().target().url());
            return send(name, pathAndQuery, req, body, next.get(), variant, false);
          }
          next.ifPresent(RoutingTable.Lease::close);
          return CompletableFuture.<HttpResponse>failedFuture(new IllegalStateException("replica " + l.target().url()
              + " of variant " + l.target().variant() + " failed: " + cause.getMessage()));
        }).thenCompose(x -> x);
  }
}

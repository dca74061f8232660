package io.kiln.coordinator.endpoints;

import io.kiln.coordinator.api.ApiJson;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router's one forwarding core, called by both front ends (the Netty data-plane listener and
 * the pekko-http route on the API port), which authenticate the caller first. For
 * {@code /endpoints/{name}/invocations} and {@code /endpoints/{name}/v2/...} it picks a replica from
 * the {@link RoutingTable} (the variant named by {@code X-Kiln-Target-Variant}, else one drawn by
 * weight; round robin among its replicas), sends the request over {@link ReplicaConnections} with
 * the coordinator's token and the caller's {@code Content-Type}, {@code Accept} and target-model
 * headers, and answers with the replica's answer plus {@code X-Kiln-Variant}. When the request never
 * reached its replica (connection refused: the replica is gone) it goes once to another replica.
 * 404 for an unknown endpoint or path, 400 for an unknown variant, 503 when no replica is ready,
 * 502 when the replica failed. The replica's lease (in-flight count) ends with its answer or failure.
 */
public final class InvocationForwarder {
  private static final Logger log = LoggerFactory.getLogger(InvocationForwarder.class);
  static final String TARGET_VARIANT = "X-Kiln-Target-Variant";
  static final String VARIANT = "X-Kiln-Variant";
  /** Caller headers the replica sees (besides the body's length and the coordinator's token). */
  private static final List<String> FORWARDED = List.of("Content-Type", "Accept", "X-Kiln-Target-Model",
      "X-Amzn-SageMaker-Target-Model");
  /** Replica answer headers that describe the hop, not the answer: each front end writes its own. */
  private static final Set<String> HOP = Set.of("connection", "keep-alive", "transfer-encoding", "content-length",
      "content-type", "proxy-connection", "upgrade", "te", "trailer");

  /** The endpoint's state, for the answer when no replica is ready (503 naming the status, or 404). */
  public interface Status {
    CompletionStage<EndpointState> get(String endpoint);
  }

  /**
   * One call. {@code pathAndQuery}: what follows {@code /endpoints/{name}}, still percent-encoded,
   * with its query; {@code header}: the caller's header by name (case-insensitive), null when absent,
   * only read during {@link #forward}; {@code body}: owned (released) by the forwarder from then on;
   * {@code loop}: the caller's Netty event loop, or null.
   */
  public record Invocation(String endpoint, String pathAndQuery, String method, Function<String, String> header,
                           ByteBuf body, EventLoop loop) {}

  /** The answer; whoever gets it releases {@code body}. {@code contentType} may be null. */
  public record Answer(int status, String contentType, ByteBuf body, List<Map.Entry<String, String>> headers) {
    static Answer error(int status, String message) {
      byte[] json = ApiJson.error(message, List.of()).toString().getBytes(StandardCharsets.UTF_8);
      return new Answer(status, "application/json", Unpooled.wrappedBuffer(json), List.of());
    }
  }

  private final RoutingTable routing;
  private final Status status;
  private final String authorization;
  private final ReplicaConnections connections;

  InvocationForwarder(RoutingTable routing, Status status, String token, ReplicaConnections connections) {
    this.routing = routing;
    this.status = status;
    this.authorization = "Bearer " + token;
    this.connections = connections;
  }

  /** Forwards {@code in}; never completes exceptionally (failures are answers: 4xx, 502, 503). */
  public CompletableFuture<Answer> forward(Invocation in) {
    RoutingTable.Lease lease;
    HttpHeaders headers;
    String variant;
    try {
      String path = in.pathAndQuery().split("\\?", 2)[0];
      if (!path.equals("/invocations") && !path.equals("/v2") && !path.startsWith("/v2/")) {
        return done(in, Answer.error(404, "no route " + path + " on endpoint " + in.endpoint()
            + " (POST /endpoints/{name}/invocations, /endpoints/{name}/v2/models/{model}/infer)"));
      }
      variant = in.header().apply(TARGET_VARIANT);
      Optional<RoutingTable.Lease> l;
      try {
        l = routing.acquire(in.endpoint(), variant);
      } catch (IllegalArgumentException e) {
        return done(in, Answer.error(400, e.getMessage()));
      }
      if (l.isEmpty()) {
        in.body().release();
        return unavailable(in.endpoint());
      }
      lease = l.get();
      headers = new DefaultHttpHeaders();
      for (String h : FORWARDED) {
        String v = in.header().apply(h);
        if (v != null) headers.set(h, v);
      }
      headers.set(HttpHeaderNames.AUTHORIZATION, authorization).setInt(HttpHeaderNames.CONTENT_LENGTH, in.body().readableBytes());
    } catch (RuntimeException e) { // a bug: the caller still gets an answer and the body is released
      log.error("endpoint {}: forwarding failed", in.endpoint(), e);
      return done(in, Answer.error(500, "internal error: " + e));
    }
    CompletableFuture<Answer> answer = send(in, headers, variant, lease, true);
    answer.whenComplete((a, e) -> in.body().release());
    return answer;
  }

  /**
   * One attempt on the replica of {@code l}; when the request did not reach it and another replica
   * is there, one more attempt on that one. The request never reached the model then, so trying
   * again cannot predict twice.
   */
  private CompletableFuture<Answer> send(Invocation in, HttpHeaders headers, String variant, RoutingTable.Lease l,
                                         boolean mayRetry) {
    String url = l.target().url();
    FullHttpRequest req;
    try {
      req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.valueOf(in.method()), in.pathAndQuery(),
          in.body().retainedDuplicate(), headers.copy().set(HttpHeaderNames.HOST, authority(url)), EmptyHttpHeaders.INSTANCE);
    } catch (RuntimeException e) {
      l.close();
      return CompletableFuture.completedFuture(Answer.error(400, "cannot forward this request: " + e.getMessage()));
    }
    return connections.send(url, in.loop(), req).handle((r, e) -> {
      l.close();
      if (e == null) return CompletableFuture.completedFuture(answer(r, l.target().variant()));
      Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
      Optional<RoutingTable.Lease> next = Optional.empty();
      if (mayRetry && cause instanceof ReplicaConnections.NotSent) {
        try {
          next = routing.acquire(in.endpoint(), variant);
        } catch (IllegalArgumentException gone) {
          // the variant left the endpoint meanwhile: no other replica
        }
      }
      if (next.isPresent() && !next.get().target().url().equals(url)) {
        log.warn("endpoint {}: replica {} {}; retrying on {}", in.endpoint(), url, cause.getMessage(), next.get().target().url());
        return send(in, headers, variant, next.get(), false);
      }
      next.ifPresent(RoutingTable.Lease::close);
      return CompletableFuture.completedFuture(Answer.error(502, "endpoint " + in.endpoint() + ": replica " + url
          + " of variant " + l.target().variant() + " failed: " + cause.getMessage()));
    }).thenCompose(x -> x);
  }

  private CompletableFuture<Answer> unavailable(String endpoint) {
    CompletableFuture<Answer> out = new CompletableFuture<>();
    status.get(endpoint).whenComplete((s, e) -> {
      Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
      if (cause == null) {
        out.complete(Answer.error(503, "endpoint " + endpoint + " has no ready replica (status " + s.status()
            + (s.failureReason().isEmpty() ? "" : ": " + s.failureReason()) + ")"));
      } else if (cause instanceof EndpointException x && x.kind() == EndpointException.Kind.NOT_FOUND) {
        out.complete(Answer.error(404, "no endpoint " + endpoint));
      } else {
        out.complete(Answer.error(503, "endpoint " + endpoint + " has no ready replica (" + cause.getMessage() + ")"));
      }
    });
    return out;
  }

  private static CompletableFuture<Answer> done(Invocation in, Answer a) {
    in.body().release();
    return CompletableFuture.completedFuture(a);
  }

  private static Answer answer(FullHttpResponse r, String variant) {
    List<Map.Entry<String, String>> hs = new ArrayList<>(r.headers().size() + 1);
    for (Map.Entry<String, String> h : r.headers()) {
      if (!HOP.contains(h.getKey().toLowerCase(Locale.ROOT))) hs.add(h);
    }
    hs.add(Map.entry(VARIANT, variant));
    return new Answer(r.status().code(), r.headers().get(HttpHeaderNames.CONTENT_TYPE), r.content(), hs);
  }

  /** {@code host:port} of {@code http://host:port}. */
  private static String authority(String url) {
    int from = url.indexOf("//") + 2;
    int to = url.indexOf('/', from);
    return to < 0 ? url.substring(from) : url.substring(from, to);
  }
}

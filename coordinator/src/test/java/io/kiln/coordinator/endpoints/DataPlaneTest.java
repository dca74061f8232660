package io.kiln.coordinator.endpoints;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.coordinator.api.ApiToken;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.server.Directives;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The router's forwarding core behind both front ends, with real sockets: a JDK HttpServer as the
 * replica that echoes what it received, a closed port as a replica that refuses connections, and
 * a raw socket that reads a request and hangs up without answering.
 */
class DataPlaneTest {
  private static final String ROW = "{\"instances\": [[0.5, 0.5]]}";

  static { // else the JDK server's answers wait for delayed ACKs (Nagle), 40 ms each
    System.setProperty("sun.net.httpserver.nodelay", "true");
  }
  @TempDir Path dir;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final List<AutoCloseable> closing = new ArrayList<>();
  private final RoutingTable routing = new RoutingTable();
  private final AtomicInteger served = new AtomicInteger();
  private HttpServer upstream;
  private String live;
  private String token;
  private DataPlane plane;

  @BeforeEach
  void start() throws Exception {
    upstream = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    upstream.createContext("/", this::echo);
    upstream.start();
    live = "http://127.0.0.1:" + upstream.getAddress().getPort();
    ApiToken t = ApiToken.loadOrCreate(dir);
    token = t.value();
    plane = new DataPlane(RouterSettings.local(Duration.ofSeconds(5)), routing, name -> name.equals("starting")
        ? CompletableFuture.completedFuture(new EndpointState(name, true, EndpointState.Status.Creating, null, List.of(), 1,
            null, "", "u", 0, 0, List.of()))
        : CompletableFuture.failedFuture(EndpointException.notFound("no endpoint " + name)), t);
  }

  @AfterEach
  void stop() throws Exception {
    plane.close();
    upstream.stop(0);
    for (AutoCloseable c : closing) c.close();
  }

  /** The replica: answers with what it got (path, headers, body) and a header of its own. */
  private void echo(HttpExchange x) throws java.io.IOException {
    byte[] in = x.getRequestBody().readAllBytes();
    var h = x.getRequestHeaders();
    var n = ApiJson.obj().put("method", x.getRequestMethod()).put("uri", x.getRequestURI().toString())
        .put("body", new String(in, StandardCharsets.UTF_8));
    for (String k : List.of("Authorization", "Content-Type", "Accept", "X-Kiln-Target-Model",
        "X-Amzn-SageMaker-Target-Model", "X-Kiln-Target-Variant", "X-Private", "Host")) {
      if (h.getFirst(k) != null) n.put(k.toLowerCase(), h.getFirst(k));
    }
    byte[] out = n.toString().getBytes(StandardCharsets.UTF_8);
    x.getResponseHeaders().set("Content-Type", "application/json");
    x.getResponseHeaders().set("X-Kiln-Cold-Start-Ms", "7");
    served.incrementAndGet();
    x.sendResponseHeaders(200, out.length);
    x.getResponseBody().write(out);
    x.close();
  }

  private static EndpointConfig config(String... variants) {
    EndpointConfig.Builder b = EndpointConfig.newBuilder();
    for (String v : variants) b.addVariants(EndpointVariant.newBuilder().setName(v).setWeight(1));
    return b.build();
  }

  private static EndpointReplica replica(String variant, String url) {
    return EndpointReplica.newBuilder().setVariant(variant).setUrl(url).build();
  }

  private HttpResponse<String> post(String base, String path, String auth, String... headers) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(10))
        .POST(HttpRequest.BodyPublishers.ofString(ROW));
    if (auth != null) b.header("Authorization", "Bearer " + auth);
    for (int i = 0; i < headers.length; i += 2) b.header(headers[i], headers[i + 1]);
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** What the replica saw (as JSON) of a request with Content-Type application/json and X-Kiln-Target-Model m1. */
  private JsonNode assertForwarded(HttpResponse<String> r, String uri) throws Exception {
    assertEquals(200, r.statusCode(), r.body());
    JsonNode seen = ApiJson.MAPPER.readTree(r.body());
    assertEquals("Bearer " + token, seen.path("authorization").asText(), "the replica sees the coordinator's token");
    assertEquals("application/json", seen.path("content-type").asText());
    assertEquals("m1", seen.path("x-kiln-target-model").asText());
    assertEquals(uri, seen.path("uri").asText());
    assertEquals(ROW, seen.path("body").asText());
    assertEquals("a", r.headers().firstValue("X-Kiln-Variant").orElse(null));
    assertEquals("7", r.headers().firstValue("X-Kiln-Cold-Start-Ms").orElse(null), "the replica's own headers come back");
    assertEquals("application/json", r.headers().firstValue("Content-Type").orElse(null));
    return seen;
  }

  private void assertNothingInFlight(String endpoint, String... urls) {
    assertEquals(0, routing.endpointInFlight(endpoint), "leases of " + endpoint + " all closed");
    for (String u : urls) assertEquals(0, routing.inFlight(u), "leases on " + u + " all closed");
  }

  @Test
  void forwardsTheCallersHeadersWithTheCoordinatorsTokenAndNamesTheVariant() throws Exception {
    routing.set("e", config("a"), List.of(replica("a", live)));
    HttpResponse<String> r = post(plane.url(), "/endpoints/e/invocations", token, "Content-Type", "application/json",
        "Accept", "application/json", "X-Kiln-Target-Model", "m1", "X-Amzn-SageMaker-Target-Model", "m2",
        "X-Private", "not for the replica", "X-Kiln-Target-Variant", "a");
    JsonNode seen = assertForwarded(r, "/invocations");
    assertEquals("application/json", seen.path("accept").asText());
    assertEquals("m2", seen.path("x-amzn-sagemaker-target-model").asText());
    assertEquals(live.substring("http://".length()), seen.path("host").asText());
    assertFalse(seen.has("x-private"), "only the listed headers reach the replica: " + seen);
    assertFalse(seen.has("x-kiln-target-variant"), seen.toString());
    assertEquals("POST", seen.path("method").asText());

    HttpResponse<String> v2 = post(plane.url(), "/endpoints/e/v2/models/m%20x/infer?verbose=1&a=b", token);
    assertEquals(200, v2.statusCode(), v2.body());
    assertEquals("/v2/models/m%20x/infer?verbose=1&a=b", ApiJson.MAPPER.readTree(v2.body()).path("uri").asText());
    // many requests over the kept-alive connections
    for (int i = 0; i < 50; i++) assertEquals(200, post(plane.url(), "/endpoints/e/invocations", token).statusCode());
    assertNothingInFlight("e", live);
  }

  @Test
  void refusedConnectionGoesOnceToAnotherReplica() throws Exception {
    String dead = closedPort();
    routing.set("e", config("a"), List.of(replica("a", dead), replica("a", live)));
    for (int i = 0; i < 6; i++) {
      HttpResponse<String> r = post(plane.url(), "/endpoints/e/invocations", token);
      assertEquals(200, r.statusCode(), "request " + i + ": " + r.body());
    }
    assertEquals(6, served.get(), "every request reached the live replica");
    assertNothingInFlight("e", dead, live);

    routing.set("solo", config("a"), List.of(replica("a", dead)));
    HttpResponse<String> r = post(plane.url(), "/endpoints/solo/invocations", token);
    assertEquals(502, r.statusCode(), r.body());
    assertTrue(r.body().contains("refused the connection"), r.body());
    assertNothingInFlight("solo", dead);
  }

  @Test
  void replicaThatHangsUpMidRequestIs502WithoutRetry() throws Exception {
    String hangsUp = hangsUp();
    routing.set("e", config("a"), List.of(replica("a", hangsUp), replica("a", live)));
    HttpResponse<String> r = post(plane.url(), "/endpoints/e/invocations", token);
    assertEquals(502, r.statusCode(), r.body());
    assertTrue(r.body().contains(hangsUp), r.body());
    assertEquals(0, served.get(), "the request reached a replica: it is not sent again");
    assertNothingInFlight("e", hangsUp, live);
    assertEquals(200, post(plane.url(), "/endpoints/e/invocations", token).statusCode(), "round robin: the next goes to the live one");
    assertNothingInFlight("e", hangsUp, live);
  }

  @Test
  void replicaThatDoesNotAnswerInTimeIs502() throws Exception {
    ServerSocket silent = new ServerSocket(0); // accepts (the kernel does) and never answers
    closing.add(silent);
    String url = "http://127.0.0.1:" + silent.getLocalPort();
    RoutingTable table = new RoutingTable();
    table.set("e", config("a"), List.of(replica("a", url), replica("a", live)));
    try (DataPlane quick = new DataPlane(RouterSettings.local(Duration.ofMillis(300)), table,
        name -> CompletableFuture.failedFuture(EndpointException.notFound(name)), ApiToken.loadOrCreate(dir))) {
      long t0 = System.nanoTime();
      HttpResponse<String> r = post(quick.url(), "/endpoints/e/invocations", token);
      assertEquals(502, r.statusCode(), r.body());
      assertTrue(r.body().contains("gave no answer within 300 ms"), r.body());
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L);
      assertEquals(0, served.get(), "a request that may have reached its replica is not sent again");
      assertEquals(0, table.endpointInFlight("e"));
      assertEquals(0, table.inFlight(url));
    }
  }

  @Test
  void errorsAndAuthentication() throws Exception {
    routing.set("e", config("a", "b"), List.of(replica("a", live)));
    assertEquals(401, post(plane.url(), "/endpoints/e/invocations", null).statusCode());
    HttpResponse<String> wrong = post(plane.url(), "/endpoints/e/invocations", "kiln_wrong-token-wrong-token");
    assertEquals(401, wrong.statusCode());
    assertEquals("invalid API token", ApiJson.MAPPER.readTree(wrong.body()).path("error").asText());
    assertEquals(0, served.get());
    assertEquals(404, post(plane.url(), "/api/v1/endpoints", token).statusCode());
    assertEquals(404, post(plane.url(), "/endpoints/e/other", token).statusCode());
    assertEquals(404, post(plane.url(), "/endpoints/nope/invocations", token).statusCode());
    HttpResponse<String> starting = post(plane.url(), "/endpoints/starting/invocations", token);
    assertEquals(503, starting.statusCode(), starting.body());
    assertTrue(starting.body().contains("Creating"), starting.body());
    HttpResponse<String> variant = post(plane.url(), "/endpoints/e/invocations", token, "X-Kiln-Target-Variant", "zz");
    assertEquals(400, variant.statusCode());
    assertTrue(variant.body().contains("no variant 'zz'"), variant.body());
    HttpResponse<String> noReplica = post(plane.url(), "/endpoints/e/invocations", token, "X-Kiln-Target-Variant", "b");
    assertEquals(404, noReplica.statusCode(), "variant b has no replica and the endpoint lookup says unknown: "
        + noReplica.body());
    assertNothingInFlight("e", live);
  }

  @Test
  void forgettingAReplicaClosesItsConnections() throws Exception {
    routing.set("e", config("a"), List.of(replica("a", live)));
    assertEquals(200, post(plane.url(), "/endpoints/e/invocations", token).statusCode());
    assertTrue(plane.pooledReplicas().contains(live));
    routing.forget(live);
    assertFalse(plane.pooledReplicas().contains(live));
    assertEquals(200, post(plane.url(), "/endpoints/e/invocations", token).statusCode(), "a replica still routed to gets a new pool");
  }

  @Test
  void theApiPortRouteUsesTheSameCore() throws Exception {
    routing.set("e", config("a"), List.of(replica("a", live)));
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "router-test",
        ConfigFactory.parseString("pekko.actor.provider = local").withFallback(ConfigFactory.load()));
    closing.add(() -> {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
    });
    InvocationRouter router = new InvocationRouter(plane.forwarder());
    ServerBinding b = Http.get(system).newServerAt("127.0.0.1", 0)
        .bind(Directives.pathPrefix("endpoints", router::route)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    String api = "http://127.0.0.1:" + b.localAddress().getPort();
    HttpResponse<String> r = post(api, "/endpoints/e/v2/models/m/infer?x=1", null, "Content-Type", "application/json",
        "X-Kiln-Target-Model", "m1");
    assertForwarded(r, "/v2/models/m/infer?x=1");
    assertEquals(404, post(api, "/endpoints/dead/invocations", null).statusCode(), "no such endpoint");
    routing.set("dead", config("a"), List.of(replica("a", closedPort())));
    HttpResponse<String> dead = post(api, "/endpoints/dead/invocations", null);
    assertEquals(502, dead.statusCode(), dead.body());
    assertEquals(404, post(api, "/endpoints/e/other", null).statusCode());
    assertNothingInFlight("e", live);
    assertNothingInFlight("dead");
  }

  /** A URL nothing listens on. */
  private static String closedPort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return "http://127.0.0.1:" + s.getLocalPort();
    }
  }

  /** A replica that reads a request's head and closes the connection without answering. */
  private String hangsUp() throws Exception {
    ServerSocket s = new ServerSocket(0);
    closing.add(s);
    Thread t = new Thread(() -> {
      while (!s.isClosed()) {
        try (Socket c = s.accept()) {
          InputStream in = c.getInputStream();
          int last = 0;
          int matched = 0;
          while (matched < 4 && (last = in.read()) >= 0) matched = last == "\r\n\r\n".charAt(matched) ? matched + 1 : last == '\r' ? 1 : 0;
        } catch (Exception e) {
          return;
        }
      }
    }, "hangs-up");
    t.setDaemon(true);
    t.start();
    return "http://127.0.0.1:" + s.getLocalPort();
  }
}

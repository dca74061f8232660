package io.kiln.deploy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.deploy.TestModels;
import java.io.IOException;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Netty transport: keep-alive, pipelining order, bad and oversized requests, slow loads off the I/O threads, graceful close. */
class TransportTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;
  Path model;
  ModelServer server;
  CountDownLatch loading;
  CountDownLatch release;
  final ExecutorService ex = Executors.newCachedThreadPool();

  @BeforeEach
  void model() throws Exception {
    model = TestModels.kmeans(tmp.resolve("km"), new double[][] {{0, 0}, {10, 10}});
  }

  @AfterEach
  void stop() {
    if (release != null) release.countDown();
    ex.shutdownNow();
    if (server != null) server.close();
  }

  /** Model "km"; its first load blocks until {@link #release} when {@code slow}. */
  private ModelServer start(boolean slow, int maxConcurrency) throws Exception {
    BlockingSource blocking = new BlockingSource("km", model);
    loading = blocking.loading;
    release = blocking.release;
    ModelSource src = slow ? blocking : ModelSource.single("km", model.toUri());
    server = ModelServer.start(src, ServerOptions.defaults(Http.TOKEN).withMaxConcurrency(maxConcurrency));
    return server;
  }

  @Test
  void keepAliveServesManyRequestsOnOneConnection() throws Exception {
    int port = start(false, 64).port();
    try (RawHttp c = new RawHttp(port)) {
      for (int i = 0; i < 500; i++) {
        boolean far = i % 2 == 0;
        c.send(RawHttp.post("/invocations", "text/csv", far ? "10,10" : "1,1"));
        RawHttp.Response r = c.read();
        assertEquals(200, r.status(), r.body());
        assertTrue(r.body().startsWith(far ? "1.0," : "0.0,"), i + ": " + r.body());
        assertEquals(i == 0, r.header("X-Kiln-Cold-Start-Ms") != null, "only the first request loads");
        assertNull(r.header("Connection"), "kept alive");
        assertNotNull(r.header("Date"));
      }
    }
    JsonNode m = JSON.readTree(Http.get(port, "/metrics").body());
    assertEquals(501, m.get("requests").asLong());
    assertEquals(0, m.get("in_flight").asInt());
  }

  @Test
  void pipelinedAnswersKeepRequestOrderWhenTheFirstWaitsForALoad() throws Exception {
    int port = start(true, 64).port();
    try (RawHttp c = new RawHttp(port)) {
      // the first waits for the (slow) load on a predict thread; the others would be quick on the I/O thread
      c.send(RawHttp.post("/invocations", "text/csv", "10,10"), RawHttp.get("/v2/health/live"),
          RawHttp.post("/invocations", "text/csv", "1,1"), RawHttp.get("/metrics"));
      assertTrue(loading.await(10, TimeUnit.SECONDS));
      release.countDown();
      RawHttp.Response r = c.read();
      assertEquals("1.0,0.0\n", r.body());
      assertNotNull(r.header("X-Kiln-Cold-Start-Ms"));
      assertEquals("{\"live\":true}", c.read().body());
      assertTrue(c.read().body().startsWith("0.0,"));
      assertTrue(c.read().body().contains("\"requests\":4"));
    }
  }

  @Test
  void aSlowLoadDoesNotHoldOtherConnections() throws Exception {
    int port = start(true, 64).port();
    Future<HttpResponse<String>> cold = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "10,10"));
    assertTrue(loading.await(10, TimeUnit.SECONDS));
    // while the load blocks: other connections are answered, also by the I/O thread that read the cold request
    for (int i = 0; i < 20; i++) {
      try (RawHttp c = new RawHttp(port)) {
        c.send(RawHttp.get("/v2/health/ready"));
        assertEquals(200, c.read().status());
      }
    }
    assertFalse(cold.isDone());
    Future<HttpResponse<String>> second = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "1,1"));
    release.countDown();
    assertEquals("1.0,0.0\n", cold.get(10, TimeUnit.SECONDS).body());
    assertEquals(200, second.get(10, TimeUnit.SECONDS).statusCode());
  }

  @Test
  void overConcurrencyIs429AtOnceOnAnotherConnection() throws Exception {
    int port = start(true, 2).port();
    Future<HttpResponse<String>> a = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "1,1"));
    assertTrue(loading.await(10, TimeUnit.SECONDS));
    Future<HttpResponse<String>> b = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "1,1"));
    long deadline = System.nanoTime() + 10_000_000_000L; // until b waits for the same load: 2 in flight
    while (server.metrics().requests.get() < 2 && System.nanoTime() < deadline) Thread.sleep(5);
    try (RawHttp c = new RawHttp(port)) {
      c.send(RawHttp.get("/v2/health/live")); // every request counts, quick ones too
      RawHttp.Response r = c.read();
      assertEquals(429, r.status(), r.body());
      assertTrue(r.body().contains("limit 2"), r.body());
      release.countDown();
      assertEquals(200, a.get(10, TimeUnit.SECONDS).statusCode());
      assertEquals(200, b.get(10, TimeUnit.SECONDS).statusCode());
      c.send(RawHttp.get("/v2/health/live"));
      assertEquals(200, c.read().status(), "the connection stays usable");
    }
  }

  @Test
  void malformedRequestsAre400AndCloseTheConnection() throws Exception {
    int port = start(false, 64).port();
    try (RawHttp c = new RawHttp(port)) {
      c.send("GET /ping HTTP/1.1 extra\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
      RawHttp.Response r = c.read();
      assertEquals(400, r.status(), r.body());
      assertTrue(r.body().contains("malformed HTTP request"), r.body());
      assertEquals("close", r.header("Connection"));
      assertTrue(c.closedByServer());
    }
    try (RawHttp c = new RawHttp(port)) {
      c.send(("GET /" + "x".repeat(10_000) + " HTTP/1.1\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
      assertEquals(414, c.read().status());
    }
    try (RawHttp c = new RawHttp(port)) { // a body that is not JSON is the router's 400; the connection stays
      c.send(RawHttp.post("/invocations", "application/json", "{oops"), RawHttp.get("/v2/health/live"));
      RawHttp.Response r = c.read();
      assertEquals(400, r.status());
      assertTrue(r.body().contains("malformed JSON"), r.body());
      assertEquals(200, c.read().status());
    }
  }

  @Test
  void aBodyOverTheLimitIs413WithTheLimit() throws Exception {
    int port = start(false, 64).port();
    try (RawHttp c = new RawHttp(port)) { // Content-Length says too much: answered before the body comes
      c.send(("POST /invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + Http.TOKEN
          + "\r\nContent-Type: text/csv\r\nContent-Length: " + (ModelServer.MAX_BODY + 1) + "\r\nConnection: close\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII));
      RawHttp.Response r = c.read();
      assertEquals(413, r.status());
      assertTrue(r.body().contains("limit of " + ModelServer.MAX_BODY + " bytes (8 MiB)"), r.body());
    }
    // a real client sending the whole body, on a kept-alive connection
    String big = "1,1\n".repeat(ModelServer.MAX_BODY / 4 + 10);
    HttpResponse<String> r = Http.post(port, "/invocations", "text/csv", big);
    assertEquals(413, r.statusCode());
    assertTrue(JSON.readTree(r.body()).get("error").asText().contains("limit"), r.body());
    assertEquals(200, Http.post(port, "/invocations", "text/csv", "1,1").statusCode());
    assertTrue(JSON.readTree(Http.get(port, "/metrics").body()).get("errors_4xx").asLong() >= 2);
  }

  @Test
  void closeFinishesRequestsInFlightAndStopsAccepting() throws Exception {
    int port = start(true, 64).port();
    Future<HttpResponse<String>> inFlight = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "10,10"));
    assertTrue(loading.await(10, TimeUnit.SECONDS));
    Future<?> closing = ex.submit(() -> server.close());
    long deadline = System.nanoTime() + 10_000_000_000L;
    boolean refused = false;
    while (!refused && System.nanoTime() < deadline) {
      try (Socket s = new Socket("127.0.0.1", port)) {
        Thread.sleep(10);
      } catch (IOException e) {
        refused = true;
      }
    }
    assertTrue(refused, "still accepting connections while closing");
    assertFalse(closing.isDone(), "close waits for the request in flight");
    release.countDown();
    assertEquals("1.0,0.0\n", inFlight.get(10, TimeUnit.SECONDS).body());
    closing.get(10, TimeUnit.SECONDS);
    server = null;
    assertThrows(IOException.class, () -> new Socket("127.0.0.1", port).close());
  }
}

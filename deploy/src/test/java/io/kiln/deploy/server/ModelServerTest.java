package io.kiln.deploy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.deploy.TestModels;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A single-model server on a kmeans model, over real HTTP. */
class ModelServerTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;
  Path model;
  ModelServer server;

  @BeforeEach
  void start() throws Exception {
    model = TestModels.kmeans(tmp.resolve("km"), new double[][] {{0, 0}, {10, 10}});
    server = ModelServer.start(ModelSource.single("km", model.toUri()),
        ServerOptions.defaults(Http.TOKEN).withCapture(new DataCapture(tmp.resolve("capture").toUri(), 100)));
  }

  @AfterEach
  void stop() {
    if (server != null) server.close();
  }

  @Test
  void sagemakerContractJsonAndCsv() throws Exception {
    int port = server.port();
    assertEquals(200, Http.get(port, "/ping").statusCode());
    HttpResponse<String> r = Http.post(port, "/invocations", "application/json", "{\"instances\": [[1, 1], [9, 9]]}");
    assertEquals(200, r.statusCode(), r.body());
    JsonNode p = JSON.readTree(r.body()).get("predictions");
    assertEquals(0, p.get(0).get(0).asInt());
    assertEquals(1, p.get(1).get(0).asInt());
    assertTrue(r.headers().firstValue("X-Kiln-Cold-Start-Ms").isPresent(), "the first request loads the model");
    r = Http.post(port, "/invocations", "text/csv", "1,1\n9,9\n");
    assertEquals(200, r.statusCode(), r.body());
    assertEquals("0.0,1.4142135\n1.0,1.4142135\n", r.body());
    assertTrue(r.headers().firstValue("X-Kiln-Cold-Start-Ms").isEmpty(), "already loaded");
    r = Http.post(port, "/invocations", "text/csv", "9,9", "Accept", "application/json");
    assertEquals(1, JSON.readTree(r.body()).get("predictions").get(0).get(0).asInt());
  }

  @Test
  void openInferenceProtocolV2() throws Exception {
    int port = server.port();
    assertEquals(200, Http.get(port, "/v2/health/ready").statusCode());
    assertEquals(200, Http.get(port, "/v2/health/live").statusCode());
    JsonNode meta = JSON.readTree(Http.get(port, "/v2/models/km").body());
    assertEquals(2, meta.get("inputs").get(0).get("shape").get(1).asInt());
    HttpResponse<String> r = Http.post(port, "/v2/models/km/versions/1/infer", "application/json",
        "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[1,1,10,11]}]}");
    assertEquals(200, r.statusCode(), r.body());
    JsonNode o = JSON.readTree(r.body());
    assertEquals("km", o.get("model_name").asText());
    assertEquals("r1", o.get("id").asText());
    JsonNode out = o.get("outputs").get(0);
    assertEquals("[2,2]", out.get("shape").toString());
    assertEquals(0, out.get("data").get(0).asInt());
    assertEquals(1, out.get("data").get(2).asInt());
    assertEquals(404, Http.get(port, "/v2/models/other/ready").statusCode());
  }

  @Test
  void badRequestsAreNamed() throws Exception {
    int port = server.port();
    assertEquals(401, Http.noAuth(port, "/ping").statusCode());
    HttpResponse<String> r = Http.post(port, "/invocations", "application/json", "{\"instances\": [[1, 2, 3]]}");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("has 3 features; the model takes 2"), r.body());
    r = Http.post(port, "/invocations", "application/json", "{\"instances\": [[1, \"a\"]]}");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("value 1 is not a number"), r.body());
    r = Http.post(port, "/invocations", "application/json", "{oops");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("malformed JSON"), r.body());
    r = Http.post(port, "/invocations", "text/csv", "1,x");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("CSV line 1, column 2 is not a number"), r.body());
    r = Http.post(port, "/v2/models/km/infer", "application/json",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"BYTES\",\"data\":[\"a\",\"b\"]}]}");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("datatype 'BYTES' is not served"), r.body());
    r = Http.post(port, "/v2/models/km/infer", "application/json",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}");
    assertEquals(400, r.statusCode());
    assertTrue(r.body().contains("has 3 values; shape [2,2] needs 4"), r.body());
    r = Http.post(port, "/v2/models/nope/infer", "application/json",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[1,2]}]}");
    assertEquals(404, r.statusCode());
    assertTrue(r.body().contains("no model 'nope'"), r.body());
    assertEquals(404, Http.get(port, "/nothing").statusCode());
  }

  @Test
  void dataCaptureWritesSampledJsonLines() throws Exception {
    int port = server.port();
    for (int i = 0; i < 3; i++) Http.post(port, "/invocations", "text/csv", "1,1");
    server.close();
    server = null;
    List<String> lines;
    try (Stream<Path> s = Files.walk(tmp.resolve("capture"))) {
      lines = s.filter(p -> p.toString().endsWith(".jsonl")).flatMap(p -> {
        try {
          return Files.readAllLines(p).stream();
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      }).toList();
    }
    assertEquals(3, lines.size());
    JsonNode c = JSON.readTree(lines.get(0));
    JsonNode in = c.get("captureData").get("endpointInput");
    assertEquals("INPUT", in.get("mode").asText());
    assertEquals("1,1", in.get("data").asText());
    assertEquals("CSV", in.get("encoding").asText());
    assertTrue(in.get("observedContentType").asText().startsWith("text/csv"));
    assertEquals("OUTPUT", c.get("captureData").get("endpointOutput").get("mode").asText());
    assertTrue(c.get("eventMetadata").get("eventId").asText().length() > 10);
    assertTrue(c.get("eventMetadata").has("inferenceTime"));
  }

  @Test
  void concurrencyLimitAnswers429() throws Exception {
    server.close();
    BlockingSource slow = new BlockingSource("km", model); // the first load blocks: that request holds the only slot
    CountDownLatch entered = slow.loading;
    CountDownLatch release = slow.release;
    server = ModelServer.start(slow, ServerOptions.defaults(Http.TOKEN).withMaxConcurrency(1));
    int port = server.port();
    ExecutorService ex = Executors.newSingleThreadExecutor();
    try {
      Future<HttpResponse<String>> first = ex.submit(() -> Http.post(port, "/invocations", "text/csv", "1,1"));
      entered.await();
      HttpResponse<String> r = Http.post(port, "/invocations", "text/csv", "1,1");
      assertEquals(429, r.statusCode());
      assertTrue(r.body().contains("limit 1"), r.body());
      release.countDown();
      assertEquals(200, first.get().statusCode());
      assertEquals(200, Http.post(port, "/invocations", "text/csv", "1,1").statusCode());
    } finally {
      release.countDown();
      ex.shutdownNow();
    }
  }
}

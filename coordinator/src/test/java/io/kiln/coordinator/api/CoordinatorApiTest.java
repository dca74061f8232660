package io.kiln.coordinator.api;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.CoordinatorMain;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real coordinator (cluster node, JDBC journal, HTTP on a real socket) with no workers: the
 * API's authentication, validation, job lifecycle up to the queue, stop, and recovery of every
 * job after a restart, on H2 and on the local PostgreSQL.
 */
class CoordinatorApiTest {
  static final ObjectMapper JSON = new ObjectMapper();
  final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  @TempDir Path dir;

  static final String SPEC = """
      {"name":"queued","algorithm":"mlp","hyperparameters":{"epochs":1},
       "channels":{"train":"/usr/share/datasets/fashion-mnist"}}""";

  @Test
  void apiOnH2() throws Exception {
    exercise(ConfigFactory.parseMap(Map.of("kiln.journal", "h2")));
  }

  @Test
  void apiOnPostgres() throws Exception {
    String db = "kiln_test_" + Long.toHexString(System.nanoTime());
    try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:5432/postgres", "postgres", "")) {
      c.createStatement().execute("CREATE DATABASE " + db);
    }
    try {
      exercise(ConfigFactory.parseMap(Map.of("kiln.journal", "postgres",
          "kiln.postgres.url", "jdbc:postgresql://127.0.0.1:5432/" + db, "kiln.postgres.user", "postgres")));
    } finally {
      try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:5432/postgres", "postgres", "")) {
        c.createStatement().execute("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
      }
    }
  }

  private void exercise(Config journal) throws Exception {
    int clusterPort = freePort();
    Config config = journal.withFallback(ConfigFactory.parseMap(Map.of(
        "kiln.data-dir", dir.toString(),
        "kiln.api.port", 0,
        "kiln.cluster.port", clusterPort,
        "kiln.cluster.seed", "127.0.0.1:" + clusterPort)));
    CoordinatorMain.Running c = CoordinatorMain.launch(config);
    String jobId;
    String token = Files.readString(dir.resolve("token")).trim();
    try {
      String api = c.apiUrl();
      awaitReady(api);
      assertEquals(api, JSON.readTree(dir.resolve("coordinator.json").toFile()).get("apiUrl").asText());

      // Authentication.
      assertEquals(401, send(api, "GET", "/api/v1/training-jobs", null, null).statusCode());
      HttpResponse<String> bad = send(api, "GET", "/api/v1/training-jobs", null, "kiln_wrong-token-wrong-token");
      assertEquals(401, bad.statusCode());
      assertEquals("invalid API token", JSON.readTree(bad.body()).get("error").asText());

      // Validation names each bad field.
      HttpResponse<String> invalid = send(api, "POST", "/api/v1/training-jobs", "{\"name\":\"X\",\"algorithm\":\"nope\"}", token);
      assertEquals(400, invalid.statusCode());
      JsonNode details = JSON.readTree(invalid.body()).get("details");
      assertEquals(3, details.size(), invalid.body());

      // A valid job waits in the queue (no workers) and says why.
      HttpResponse<String> created = send(api, "POST", "/api/v1/training-jobs", SPEC, token);
      assertEquals(201, created.statusCode(), created.body());
      jobId = JSON.readTree(created.body()).get("id").asText();
      JsonNode job = JSON.readTree(send(api, "GET", "/api/v1/training-jobs/" + jobId, null, token).body());
      assertEquals("Pending", job.get("status").asText());
      assertTrue(job.get("statusReason").asText().contains("waiting for 1 worker(s)"), job.toString());
      assertEquals(1, JSON.readTree(send(api, "GET", "/api/v1/training-jobs", null, token).body()).get("jobs").size());
      assertEquals(404, send(api, "GET", "/api/v1/training-jobs/job-nope", null, token).statusCode());

      // Logs: the coordinator's own lines about the job, as server-sent events.
      HttpResponse<String> logs = send(api, "GET", "/api/v1/training-jobs/" + jobId + "/logs", null, token);
      assertEquals(200, logs.statusCode());
      assertTrue(logs.body().contains("event:log") && logs.body().contains("job submitted by local-admin"), logs.body());
      assertTrue(logs.body().contains("event:end"), logs.body());

      // Stop: at once while queued; a second stop is a conflict.
      HttpResponse<String> stop = send(api, "POST", "/api/v1/training-jobs/" + jobId + "/stop", "", token);
      assertEquals(202, stop.statusCode(), stop.body());
      assertEquals("Stopped", JSON.readTree(stop.body()).get("status").asText());
      assertEquals(409, send(api, "POST", "/api/v1/training-jobs/" + jobId + "/stop", "", token).statusCode());
      assertEquals(404, send(api, "GET", "/api/nothing", null, token).statusCode());
    } finally {
      c.system().terminate();
      c.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    // Restart on the same journal: the job and its history are still there.
    CoordinatorMain.Running again = CoordinatorMain.launch(config);
    try {
      awaitReady(again.apiUrl());
      JsonNode job = JSON.readTree(send(again.apiUrl(), "GET", "/api/v1/training-jobs/" + jobId, null, token).body());
      assertEquals("Stopped", job.get("status").asText());
      assertEquals("Submitted", job.get("history").get(0).get("event").asText());
      assertEquals("Stopped", job.get("history").get(job.get("history").size() - 1).get("event").asText());
    } finally {
      again.system().terminate();
      again.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  private void awaitReady(String api) throws Exception {
    long deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline) {
      try {
        if (send(api, "GET", "/health/ready", null, null).statusCode() == 200) return;
      } catch (java.io.IOException ignored) {
        // not listening yet
      }
      Thread.sleep(100);
    }
    fail("coordinator not ready within 30 s");
  }

  private HttpResponse<String> send(String api, String method, String path, String body, String token) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(api + path)).timeout(Duration.ofSeconds(15))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body))
        .header("Content-Type", "application/json");
    if (token != null) b.header("Authorization", "Bearer " + token);
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}

package io.kiln.coordinator.tuning;

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
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real coordinator (H2 journal, HTTP on a real socket) without workers: the tuning API's
 * validation, submission (the trials' jobs wait in the queue), listing, leaderboard, stop, and the
 * tuning job's recovery after a restart.
 */
class TuningApiTest {
  static final ObjectMapper JSON = new ObjectMapper();
  final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  @TempDir Path dir;
  String token;

  @Test
  void submitDescribeStopAndRecover() throws Exception {
    int clusterPort;
    try (ServerSocket s = new ServerSocket(0)) {
      clusterPort = s.getLocalPort();
    }
    Config config = ConfigFactory.parseMap(Map.of("kiln.data-dir", dir.toString(), "kiln.api.port", 0,
        "kiln.cluster.port", clusterPort, "kiln.cluster.seed", "127.0.0.1:" + clusterPort, "kiln.tuning.poll-interval", "200ms"));
    CoordinatorMain.Running c = CoordinatorMain.launch(config);
    token = Files.readString(dir.resolve("token")).trim();
    String id;
    try {
      String api = c.apiUrl();
      awaitReady(api);
      HttpResponse<String> bad = send(api, "POST", "/api/v1/tuning-jobs", "{\"name\":\"t\",\"strategy\":\"nope\"}");
      assertEquals(400, bad.statusCode());
      assertTrue(bad.body().contains("strategy: unknown 'nope'"), bad.body());
      String spec = TuningSpecsTest.VALID.replace("\"Bayesian\"", "\"random\"");
      HttpResponse<String> noParent = send(api, "POST", "/api/v1/tuning-jobs",
          spec.replace("\"maxTrials\"", "\"warmStartFrom\": [\"tune-none\"], \"maxTrials\""));
      assertEquals(400, noParent.statusCode());
      assertTrue(noParent.body().contains("warmStartFrom: no tuning job tune-none"), noParent.body());

      HttpResponse<String> created = send(api, "POST", "/api/v1/tuning-jobs", spec);
      assertEquals(201, created.statusCode(), created.body());
      id = JSON.readTree(created.body()).get("id").asText();
      assertTrue(id.startsWith("tune-"), id);
      assertNotEquals(0, JSON.readTree(created.body()).get("seed").asLong(), "a seed is chosen and recorded");

      // two trials (maxParallelTrials) get training jobs, which wait for workers
      JsonNode view = awaitView(api, id, v -> v.get("leaderboard").size() == 2
          && !v.get("leaderboard").get(0).get("jobId").asText().isEmpty() && !v.get("leaderboard").get(1).get("jobId").asText().isEmpty());
      JsonNode trial = view.get("leaderboard").get(0);
      assertEquals("Running", trial.get("status").asText());
      assertTrue(trial.get("hyperparameters").has("learning_rate"));
      JsonNode job = JSON.readTree(send(api, "GET", "/api/v1/training-jobs/" + trial.get("jobId").asText(), null).body());
      assertEquals("Pending", job.get("status").asText());
      assertEquals("mlp-tune-" + trial.get("trialId").asText(), job.get("name").asText());

      JsonNode list = JSON.readTree(send(api, "GET", "/api/v1/tuning-jobs", null).body());
      assertEquals(id, list.get("tuningJobs").get(0).get("id").asText());
      assertEquals(2, list.get("tuningJobs").get(0).get("trialCounts").get("running").asInt());
      assertEquals(404, send(api, "GET", "/api/v1/tuning-jobs/tune-none", null).statusCode());

      assertEquals(202, send(api, "POST", "/api/v1/tuning-jobs/" + id + "/stop", null).statusCode());
      view = awaitView(api, id, v -> v.get("status").asText().equals("Stopped"));
      assertEquals(2, view.get("trialCounts").get("stopped").asInt(), view.toString());
      assertEquals("Stopped", JSON.readTree(send(api, "GET", "/api/v1/training-jobs/" + trial.get("jobId").asText(), null).body())
          .get("status").asText(), "the trial's job is stopped too");
      assertEquals(409, send(api, "POST", "/api/v1/tuning-jobs/" + id + "/stop", null).statusCode());
    } finally {
      c.system().terminate();
      c.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
    CoordinatorMain.Running again = CoordinatorMain.launch(config);
    try {
      awaitReady(again.apiUrl());
      JsonNode view = awaitView(again.apiUrl(), id, v -> true);
      assertEquals("Stopped", view.get("status").asText());
      assertEquals(2, view.get("leaderboard").size());
    } finally {
      again.system().terminate();
      again.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  private JsonNode awaitView(String api, String id, java.util.function.Predicate<JsonNode> p) throws Exception {
    long deadline = System.currentTimeMillis() + 30_000;
    JsonNode last = null;
    while (System.currentTimeMillis() < deadline) {
      HttpResponse<String> r = send(api, "GET", "/api/v1/tuning-jobs/" + id, null);
      if (r.statusCode() == 200) {
        last = JSON.readTree(r.body());
        if (p.test(last)) return last;
      }
      Thread.sleep(100);
    }
    return fail("tuning job " + id + " did not reach the expected state; last view: " + last);
  }

  private void awaitReady(String api) throws Exception {
    long deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline) {
      try {
        if (send(api, "GET", "/health/ready", null).statusCode() == 200) return;
      } catch (java.io.IOException ignored) {
        // not listening yet
      }
      Thread.sleep(100);
    }
    fail("coordinator not ready within 30 s");
  }

  private HttpResponse<String> send(String api, String method, String path, String body) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(api + path)).timeout(Duration.ofSeconds(15))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body))
        .header("Content-Type", "application/json").header("Authorization", "Bearer " + token);
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }
}

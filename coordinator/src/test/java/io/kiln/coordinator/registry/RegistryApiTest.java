package io.kiln.coordinator.registry;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.CoordinatorMain;
import java.io.OutputStream;
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
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The registry's REST API on a real coordinator (cluster node, JDBC journal, HTTP on a socket),
 * on H2 and on the local PostgreSQL: groups, numbered versions, approvals with their history,
 * the latest approved version, every refusal, and all of it again after a restart.
 */
class RegistryApiTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String G = "/api/v1/model-package-groups";
  final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  @TempDir Path dir;
  String token;

  @Test
  void registryOnH2() throws Exception {
    exercise(ConfigFactory.parseMap(Map.of("kiln.journal", "h2")));
  }

  @Test
  void registryOnPostgres() throws Exception {
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

  /** A TorchScript-shaped model folder (a zip archive, as torch.jit.save writes). */
  private Path torchscriptModel() throws Exception {
    Path m = Files.createDirectories(dir.resolve("elsewhere/model"));
    try (OutputStream f = Files.newOutputStream(m.resolve("model.pt")); ZipOutputStream zip = new ZipOutputStream(f)) {
      zip.putNextEntry(new ZipEntry("model/data.pkl"));
      zip.write(new byte[] {1, 2, 3});
      zip.closeEntry();
    }
    return m;
  }

  private void exercise(Config journal) throws Exception {
    int clusterPort;
    try (ServerSocket s = new ServerSocket(0)) {
      clusterPort = s.getLocalPort();
    }
    Config config = journal.withFallback(ConfigFactory.parseMap(Map.of(
        "kiln.data-dir", dir.toString(), "kiln.api.port", 0,
        "kiln.cluster.port", clusterPort, "kiln.cluster.seed", "127.0.0.1:" + clusterPort)));
    Path model = torchscriptModel();
    String signature = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]}],"
        + "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,1]}]}";
    CoordinatorMain.Running c = CoordinatorMain.launch(config);
    token = Files.readString(dir.resolve("token")).trim();
    try {
      String api = c.apiUrl();
      awaitReady(api);
      assertEquals(401, send(api, "GET", G, null, false).statusCode());

      // Groups: created once, names checked.
      assertEquals(201, send(api, "POST", G, "{\"name\":\"churn\",\"description\":\"churn models\"}").statusCode());
      assertEquals(409, send(api, "POST", G, "{\"name\":\"churn\"}").statusCode());
      assertError(send(api, "POST", G, "{\"name\":\"no spaces\"}"), 400, "invalid model package group name");
      assertError(send(api, "POST", G, "{\"name\":\"x\",\"colour\":1}"), 400, "unknown field 'colour'");
      assertError(send(api, "POST", G, "{nope"), 400, "not valid JSON");
      assertError(send(api, "GET", G + "/nope", null), 404, "no model package group nope");
      assertEquals("churn", body(send(api, "GET", G, null)).get("groups").get(0).get("name").asText());

      // Versions from a model trained elsewhere, numbered 1, 2.
      String reg = "{\"modelUri\":\"" + model.toUri() + "\",\"framework\":\"torchscript\",\"description\":\"first\","
          + "\"signature\":" + signature + ",\"metrics\":{\"auc\":0.91},\"sourceUri\":\"git:churn@abc123\"}";
      HttpResponse<String> v1 = send(api, "POST", G + "/churn/versions", reg);
      assertEquals(201, v1.statusCode(), v1.body());
      JsonNode one = body(v1);
      assertEquals(1, one.get("version").asInt());
      assertEquals("PendingManualApproval", one.get("status").asText());
      assertEquals(model.toUri().toString(), one.get("artifactUri").asText());
      assertEquals(4, one.at("/signature/inputs/0/shape/1").asInt());
      assertEquals(0.91, one.at("/metrics/auc").asDouble());
      assertEquals("git:churn@abc123", one.at("/lineage/sourceUri").asText());
      assertEquals("local-admin", one.at("/lineage/registeredBy").asText());
      assertEquals(2, body(send(api, "POST", G + "/churn/versions",
          "{\"modelUri\":\"" + model + "\",\"framework\":\"torchscript\"}")).get("version").asInt());

      // Registrations that cannot be: bad folder, unknown job, a job that has not completed.
      assertError(send(api, "POST", G + "/churn/versions", "{\"modelUri\":\"" + dir.resolve("missing")
          + "\",\"framework\":\"script\"}"), 400, "does not exist");
      assertError(send(api, "POST", G + "/churn/versions", "{\"modelUri\":\"" + model + "\",\"framework\":\"mlp\"}"),
          400, "has no model.json");
      assertError(send(api, "POST", G + "/churn/versions", "{\"trainingJobId\":\"job-nope\"}"), 400,
          "no training job job-nope");
      String jobId = body(send(api, "POST", "/api/v1/training-jobs", "{\"name\":\"q\",\"algorithm\":\"mlp\","
          + "\"channels\":{\"train\":\"/usr/share/datasets/fashion-mnist\"}}")).get("id").asText();
      assertError(send(api, "POST", G + "/churn/versions", "{\"trainingJobId\":\"" + jobId + "\"}"), 409,
          "is Pending, not Completed");
      assertError(send(api, "POST", G + "/nope/versions", "{\"trainingJobId\":\"" + jobId + "\"}"), 404,
          "no model package group nope");

      // Approval: nothing approved yet, then version 1; the caller is recorded.
      assertError(send(api, "GET", G + "/churn/versions/latest-approved", null), 404, "has no Approved version");
      HttpResponse<String> approved = send(api, "POST", G + "/churn/versions/1/approval",
          "{\"status\":\"Approved\",\"reason\":\"AUC above 0.9\"}");
      assertEquals(200, approved.statusCode(), approved.body());
      JsonNode history = body(approved).get("approvalHistory");
      assertEquals("Approved", history.get(1).get("status").asText());
      assertEquals("local-admin", history.get(1).get("by").asText());
      assertEquals("AUC above 0.9", history.get(1).get("reason").asText());
      assertError(send(api, "POST", G + "/churn/versions/1/approval", "{\"status\":\"Approved\"}"), 400, "already Approved");
      assertError(send(api, "POST", G + "/churn/versions/1/approval", "{\"status\":\"Maybe\"}"), 400,
          "invalid approval status 'Maybe'");
      assertError(send(api, "POST", G + "/churn/versions/1/approval", "{\"status\":\"PendingManualApproval\"}"), 400,
          "cannot go back");
      assertError(send(api, "POST", G + "/churn/versions/9/approval", "{\"status\":\"Approved\"}"), 404, "no version 9");
      assertError(send(api, "GET", G + "/churn/versions/abc", null), 400, "version 'abc' is not a number");
      assertEquals(200, send(api, "POST", G + "/churn/versions/2/approval", "{\"status\":\"Rejected\",\"reason\":\"slow\"}").statusCode());
      assertEquals(1, body(send(api, "GET", G + "/churn/versions/latest-approved", null)).get("version").asInt());
      assertEquals(2, body(send(api, "GET", G + "/churn/versions", null)).get("versions").size());
    } finally {
      c.system().terminate();
      c.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    // Restart on the same journal: the group, both versions and the history are still there.
    CoordinatorMain.Running again = CoordinatorMain.launch(config);
    try {
      String api = again.apiUrl();
      awaitReady(api);
      JsonNode g = body(send(api, "GET", G + "/churn", null));
      assertEquals("churn models", g.get("description").asText());
      assertEquals(2, g.get("versionCount").asInt());
      assertEquals(1, g.get("latestApprovedVersion").asInt());
      JsonNode v1 = body(send(api, "GET", G + "/churn/versions/1", null));
      assertEquals("Approved", v1.get("status").asText());
      assertEquals("AUC above 0.9", v1.get("approvalHistory").get(1).get("reason").asText());
      assertEquals("Rejected", body(send(api, "GET", G + "/churn/versions/2", null)).get("status").asText());
      assertEquals(3, body(send(api, "POST", G + "/churn/versions",
          "{\"modelUri\":\"" + model + "\",\"framework\":\"torchscript\"}")).get("version").asInt(),
          "numbering goes on after a restart");
    } finally {
      again.system().terminate();
      again.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  private static void assertError(HttpResponse<String> r, int status, String text) throws Exception {
    assertEquals(status, r.statusCode(), r.body());
    assertTrue(body(r).get("error").asText().contains(text), text + " in " + r.body());
  }

  private static JsonNode body(HttpResponse<String> r) throws Exception {
    return JSON.readTree(r.body());
  }

  private void awaitReady(String api) throws Exception {
    long deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline) {
      try {
        if (send(api, "GET", "/health/ready", null, false).statusCode() == 200) return;
      } catch (java.io.IOException ignored) {
        // not listening yet
      }
      Thread.sleep(100);
    }
    fail("coordinator not ready within 30 s");
  }

  private HttpResponse<String> send(String api, String method, String path, String body) throws Exception {
    return send(api, method, path, body, true);
  }

  private HttpResponse<String> send(String api, String method, String path, String body, boolean auth) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(api + path)).timeout(Duration.ofSeconds(15))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body))
        .header("Content-Type", "application/json");
    if (auth) b.header("Authorization", "Bearer " + token);
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }
}

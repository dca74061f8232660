package io.kiln.it;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.KilnClient;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Batch transform through a real coordinator: a CSV of 300 rows with one malformed row run in 3 splits
 * (split 1 fails on its first attempt through the fault-injection hook and is retried), outputs
 * assembled beside the input in order; a missing model fails the job with its reason.
 */
class BatchTransformEndToEndTest {
  @TempDir Path dataDir;
  @TempDir Path work;

  @Test
  void transformRetriesASplitAndCountsFailedRows() throws Exception {
    Path model = EndpointsEndToEndTest.kmeans(work.resolve("model"), new float[] {0, 0, 10, 10});
    Path data = work.resolve("data");
    Files.createDirectories(data);
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 300; i++) lines.add(i % 3 == 0 ? "9.5,10" : "0.1,0.2");
    lines.set(150, "0.1,oops");
    Files.write(data.resolve("rows.csv"), lines);

    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .coordinatorProperty("kiln.transform.test.fail-once-split", "1")
        .readyTimeout(Duration.ofSeconds(120)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      String token = Files.readString(dataDir.resolve("token")).trim();
      Api api = new Api(cluster.apiUrl(), token);
      HttpResponse<String> r = api.post(Map.of("name", "t1", "modelUri", model.toString(), "input",
          data.resolve("rows.csv").toString(), "splits", 3, "maxRetries", 2));
      assertEquals(202, r.statusCode(), r.body());
      JsonNode j = api.await("t1");
      assertEquals("Completed", j.path("status").asText(), j.toPrettyString());
      assertEquals(299, j.path("rowsDone").asLong(), j.toString());
      assertEquals(1, j.path("rowsFailed").asLong(), j.toString());
      assertEquals(2, j.at("/splitDetails/1/attempts").asInt(), j.toString());
      assertEquals(1, j.at("/splitDetails/1/failures").asInt(), j.toString());
      Set<String> workers = new HashSet<>();
      j.path("splitDetails").forEach(x -> workers.add(x.path("worker").asText()));
      assertEquals(Set.of("worker-1", "worker-2"), workers, "splits spread over both workers: " + j);
      List<String> out = Files.readAllLines(data.resolve("rows.csv.out"));
      assertEquals(299, out.size());
      List<Integer> expected = new ArrayList<>();
      for (int i = 0; i < 300; i++) if (i != 150) expected.add(i % 3 == 0 ? 1 : 0);
      assertEquals(expected, out.stream().map(l -> Integer.parseInt(l.split(",")[0])).toList());
      assertTrue(Files.readString(data.resolve("rows.csv.errors")).startsWith("line 151: column 2: 'oops'"));
      try (var s = Files.list(data)) {
        assertEquals(List.of("rows.csv", "rows.csv.errors", "rows.csv.out"),
            s.map(p -> p.getFileName().toString()).sorted().toList(), "parts are removed after assembly");
      }

      api.post(Map.of("name", "t2", "modelUri", work.resolve("nope").toString(), "input", data.resolve("rows.csv").toString(),
          "output", work.resolve("out2").toString()));
      j = api.await("t2");
      assertEquals("Failed", j.path("status").asText(), j.toString());
      assertTrue(j.path("failureReason").asText().contains("cannot load the model"), j.toString());
      assertEquals(400, api.post(Map.of("name", "t3", "input", "x")).statusCode());
      assertEquals(409, api.post(Map.of("name", "t1", "modelUri", model.toString(), "input", "x")).statusCode());
      assertEquals(404, api.get("nope").statusCode());
      assertEquals(2, KilnClient.MAPPER.readTree(api.get("").body()).path("transformJobs").size());

      // JSON lines with the model from the registry (the latest Approved version)
      KilnClient client = cluster.client();
      client.createModelGroup("km", "k-means");
      client.registerModel("km", Map.of("modelUri", model.toUri().toString(), "framework", "kmeans"));
      client.setModelApproval("km", 1, "Approved", "for batch");
      List<String> json = new ArrayList<>();
      for (int i = 0; i < 40; i++) json.add(i % 2 == 0 ? "{\"features\": [9.5, 10]}" : "[0.1, 0.2]");
      Files.write(data.resolve("rows.jsonl"), json);
      r = api.post(Map.of("name", "t4", "modelGroup", "km", "input", data.resolve("rows.jsonl").toString(),
          "output", work.resolve("out4").toString(), "splits", 2));
      assertEquals(202, r.statusCode(), r.body());
      j = api.await("t4");
      assertEquals("Completed", j.path("status").asText(), j.toPrettyString());
      assertEquals(1, j.path("modelVersion").asInt(), j.toString());
      assertEquals(40, j.path("rowsDone").asLong(), j.toString());
      List<String> predicted = Files.readAllLines(work.resolve("out4/rows.jsonl.out"));
      assertEquals(40, predicted.size());
      for (int i = 0; i < 40; i++) assertEquals(i % 2 == 0 ? 1 : 0, Integer.parseInt(predicted.get(i).split(",")[0]), "row " + i);
    }
  }

  @Test
  void aSplitWhoseWorkerDiesIsRetriedOnAnotherWorker() throws Exception {
    Path model = EndpointsEndToEndTest.kmeans(work.resolve("model"), new float[] {0, 0, 10, 10});
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 100; i++) lines.add(i % 2 == 0 ? "9.5,10" : "0.1,0.2");
    Files.write(work.resolve("rows.csv"), lines);
    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .coordinatorProperty("kiln.transform.test.hang-once-split", "0")
        .readyTimeout(Duration.ofSeconds(120)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      Api api = new Api(cluster.apiUrl(), Files.readString(dataDir.resolve("token")).trim());
      HttpResponse<String> r = api.post(Map.of("name", "w", "modelUri", model.toString(), "input",
          work.resolve("rows.csv").toString(), "output", work.resolve("out").toString(), "splits", 2, "maxRetries", 1));
      assertEquals(202, r.statusCode(), r.body());
      // find the worker whose hosted process is split 0 (hanging on its first attempt), and kill it
      String host = null;
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      Path hung = work.resolve("out/.fail-once-0"); // written by the split when it starts hanging
      while ((host == null || !Files.exists(hung)) && System.nanoTime() < deadline) {
        for (LocalCluster.Node n : cluster.workers()) {
          // the command line as /proc gives it (arguments() is empty for long ones); the marker comes before the classpath
          boolean hosts = n.handle().map(h -> h.descendants().anyMatch(d -> d.info().commandLine()
              .map(c -> c.contains("-Dkiln.transform.split=w/0 ")).orElse(false))).orElse(false);
          if (hosts) {
            host = n.name();
          }
        }
        Thread.sleep(200);
      }
      if (host == null) {
        StringBuilder procs = new StringBuilder();
        for (LocalCluster.Node n : cluster.workers()) {
          n.handle().ifPresent(h -> h.descendants().forEach(d -> procs.append(n.name()).append(": ")
              .append(d.info().commandLine().orElse("?")).append('\n')));
        }
        fail("split 0 was not seen running on a worker: " + api.get("w").body() + "\n" + procs);
      }
      cluster.killWorker(host, true);
      JsonNode j;
      try {
        j = api.await("w", Duration.ofSeconds(90));
      } catch (AssertionError e) {
        StringBuilder logs = new StringBuilder();
        try (var files = Files.walk(dataDir)) {
          for (Path f : files.filter(f -> f.toString().endsWith(".log")).toList()) {
            logs.append("==== ").append(f).append('\n').append(LocalCluster.logTail(f, 40)).append('\n');
          }
        }
        throw new AssertionError(e.getMessage() + "\n" + logs, e);
      }
      assertEquals("Completed", j.path("status").asText(), j.toPrettyString());
      assertEquals(100, j.path("rowsDone").asLong(), j.toString());
      assertEquals(2, j.at("/splitDetails/0/attempts").asInt(), j.toString());
      assertTrue(j.at("/splitDetails/0/lastError").asText().contains("left"), j.toString());
      assertNotEquals(host, j.at("/splitDetails/0/worker").asText(), "the retry ran on the surviving worker: " + j);
      assertEquals(100, Files.readAllLines(work.resolve("out/rows.csv.out")).size());
    }
  }

  private record Api(String url, String token) {
    HttpResponse<String> post(Map<String, Object> body) throws Exception {
      return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url + "/api/v1/transform-jobs"))
          .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString(KilnClient.MAPPER.writeValueAsString(body))).build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> get(String name) throws Exception {
      return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url + "/api/v1/transform-jobs" + (name.isEmpty() ? "" : "/" + name)))
          .header("Authorization", "Bearer " + token).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    JsonNode await(String name) throws Exception {
      return await(name, Duration.ofSeconds(60));
    }

    JsonNode await(String name, Duration timeout) throws Exception {
      long deadline = System.nanoTime() + timeout.toNanos();
      JsonNode j = null;
      while (System.nanoTime() < deadline) {
        HttpResponse<String> r = get(name);
        j = KilnClient.MAPPER.readTree(r.body());
        if (r.statusCode() == 200 && !"InProgress".equals(j.path("status").asText())) return j;
        Thread.sleep(300);
      }
      fail("transform job " + name + " did not finish: " + j);
      return j;
    }
  }
}

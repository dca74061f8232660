package io.kiln.it;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.KilnApiException;
import io.kiln.sdk.KilnClient;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Coordinator-managed endpoints with real processes: a k-means model registered and approved,
 * deployed as "latest approved" (a ServeMain replica the coordinator starts), invoked through the
 * router on the coordinator's port; a blue/green update to two weighted variants while a client
 * sends requests without pause (none may fail); target variant; a corrupt model fails the endpoint
 * with the replica's reason; delete stops the replicas.
 */
class EndpointsEndToEndTest {
  private static final Duration READY = Duration.ofSeconds(90);
  private static final String ROW = "{\"instances\": [[0.5, 0.5]]}";
  @TempDir Path dataDir;
  @TempDir Path models;

  @Test
  void deployInvokeBlueGreenAndDelete() throws Exception {
    Path a = kmeans(models.resolve("a"), new float[] {0, 0, 10, 10});   // [0.5,0.5] -> cluster 0
    Path b = kmeans(models.resolve("b"), new float[] {10, 10, 0, 0});   // [0.5,0.5] -> cluster 1
    Path corrupt = kmeans(models.resolve("corrupt"), new float[] {0, 0, 10, 10});
    Files.write(corrupt.resolve("centroids.f32"), new byte[5]);
    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .readyTimeout(Duration.ofSeconds(120)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      KilnClient api = cluster.client();
      api.createModelGroup("km", "k-means");
      api.registerModel("km", Map.of("modelUri", a.toUri().toString(), "framework", "kmeans"));
      assertEquals(404, status(() -> api.createEndpoint(Map.of("name", "ep", "variants",
          List.of(Map.of("modelGroup", "km", "version", "latestApproved"))))), "nothing approved yet");
      assertEquals(400, status(() -> api.createEndpoint(Map.of("name", "ep", "variants", List.of()))));
      api.setModelApproval("km", 1, "Approved", "good clusters");

      api.createEndpoint(Map.of("name", "ep", "variants", List.of(Map.of("name", "a", "modelGroup", "km",
          "version", "latestApproved"))));
      JsonNode ep = api.awaitEndpoint("ep", READY);
      assertEquals("InService", ep.path("status").asText(), ep.toString());
      assertEquals(1, ep.at("/variants/0/modelVersion").asInt());
      long firstPid = ep.at("/replicas/0/pid").asLong();
      KilnClient.Invocation r = api.invokeEndpoint("ep", "application/json", ROW, null);
      assertEquals(200, r.status(), r.body());
      assertEquals(0, cluster(r), r.body());
      assertEquals("a", r.variant());
      String token = Files.readString(dataDir.resolve("token")).trim();
      HttpResponse<String> oip = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
              URI.create(cluster.apiUrl() + "/endpoints/ep/v2/models/a/infer")).header("Authorization", "Bearer " + token)
          .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
              "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": [0.5, 0.5]}]}")).build(),
          HttpResponse.BodyHandlers.ofString());
      assertEquals(200, oip.statusCode(), oip.body());
      assertEquals(0, KilnClient.MAPPER.readTree(oip.body()).at("/outputs/0/data/0").asInt(), oip.body());
      assertEquals(401, unauthenticated(cluster.apiUrl() + "/endpoints/ep/invocations"));
      // the router's own data-plane listener (the endpoint view names it; KilnClient uses it)
      String invocationUrl = ep.path("invocationUrl").asText();
      assertTrue(invocationUrl.endsWith("/endpoints/ep/invocations") && !invocationUrl.startsWith(cluster.apiUrl()), ep.toString());
      HttpResponse<String> fast = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(invocationUrl))
          .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString(ROW)).build(), HttpResponse.BodyHandlers.ofString());
      assertEquals(200, fast.statusCode(), fast.body());
      assertEquals("a", fast.headers().firstValue("X-Kiln-Variant").orElse(null));
      assertEquals(0, KilnClient.MAPPER.readTree(fast.body()).at("/predictions/0/0").asInt(), fast.body());
      assertEquals(401, unauthenticated(invocationUrl));
      String coordinatorLog = Files.readString(options.logsDir().resolve("coordinator.log"));
      assertTrue(coordinatorLog.contains("data plane listening on " + invocationUrl.replace("/endpoints/ep/invocations", "")),
          "the coordinator logs the data-plane URL");

      // blue/green to two variants while a client sends requests continuously
      AtomicBoolean stop = new AtomicBoolean();
      AtomicInteger ok = new AtomicInteger();
      List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
      Thread load = new Thread(() -> {
        while (!stop.get()) {
          try {
            KilnClient.Invocation x = api.invokeEndpoint("ep", "application/json", ROW, null);
            if (x.status() == 200) ok.incrementAndGet();
            else failures.add(x.status() + " " + x.body());
          } catch (RuntimeException e) {
            failures.add(e.toString());
          }
        }
      });
      load.start();
      Thread.sleep(300);
      api.updateEndpoint("ep", Map.of("variants", List.of(
          Map.of("name", "a", "modelGroup", "km", "version", 1, "weight", 1),
          Map.of("name", "b", "modelUri", b.toString(), "weight", 1))));
      ep = api.awaitEndpoint("ep", READY);
      Thread.sleep(1500); // the old replica drains and stops while requests continue
      stop.set(true);
      load.join();
      assertEquals(List.of(), failures, "requests failed during the blue/green update");
      assertTrue(ok.get() > 10, "only " + ok.get() + " requests during the update");
      assertEquals("InService", ep.path("status").asText(), ep.toString());
      assertEquals(2, ep.path("replicas").size(), ep.toString());
      assertNotEquals(ep.at("/replicas/0/worker").asText(), ep.at("/replicas/1/worker").asText(),
          "the replicas are spread over both workers: " + ep);
      awaitExit(List.of(firstPid));

      KilnClient.Invocation tb = api.invokeEndpoint("ep", "application/json", ROW, "b");
      assertEquals("b", tb.variant());
      assertEquals(1, cluster(tb), tb.body());
      assertEquals(400, api.invokeEndpoint("ep", "application/json", ROW, "nope").status());
      Set<String> seen = new HashSet<>();
      for (int i = 0; i < 40; i++) {
        KilnClient.Invocation x = api.invokeEndpoint("ep", "application/json", ROW, null);
        assertEquals(200, x.status(), x.body());
        assertEquals(x.variant().equals("a") ? 0 : 1, cluster(x));
        seen.add(x.variant());
      }
      assertEquals(Set.of("a", "b"), seen, "weights 1:1 reach both variants");

      String invoked = cli(0, "invoke", "ep", "--data", ROW, "--target-variant", "b");
      assertTrue(invoked.contains("\"predictions\""), invoked);
      String described = cli(0, "endpoints", "describe", "ep");
      assertTrue(described.contains("InService") && described.contains("km v1") && described.contains("generation 2 in service"), described);

      // a corrupt model fails its endpoint with the replica's reason (kiln deploy exits non-zero)
      String deployed = cli(io.kiln.cli.ExitCodes.API, "deploy", "--name", "bad", "--model", corrupt.toString());
      assertTrue(deployed.contains("Failed"), deployed);
      JsonNode bad = api.getEndpoint("bad");
      assertEquals("Failed", bad.path("status").asText(), bad.toString());
      assertTrue(bad.path("failureReason").asText().contains("corrupt"), bad.toString());
      assertEquals(503, api.invokeEndpoint("bad", "application/json", ROW, null).status());

      // a replica process that dies while its worker lives (out of memory, killed) is noticed and replaced
      JsonNode victim = api.getEndpoint("ep").at("/replicas/1");
      ProcessHandle.of(victim.path("pid").asLong()).orElseThrow().descendants().forEach(ProcessHandle::destroyForcibly);
      String victimUrl = victim.path("url").asText();
      ep = waitFor(api, "ep", e -> e.path("replicas").size() == 2 && e.path("history").toString().contains("stopped answering")
          && e.path("replicas").findValues("url").stream().noneMatch(u -> u.asText().equals(victimUrl)), Duration.ofSeconds(60));
      KilnClient.Invocation again = api.invokeEndpoint("ep", "application/json", ROW, victim.path("variant").asText());
      assertEquals(200, again.status(), again.body());

      List<Long> pids = new ArrayList<>();
      ep.path("replicas").forEach(x -> pids.add(x.path("pid").asLong()));
      api.deleteEndpoint("ep");
      assertEquals(404, status(() -> api.getEndpoint("ep")));
      assertEquals(404, api.invokeEndpoint("ep", "application/json", ROW, null).status());
      awaitExit(pids);
      assertEquals(List.of("bad"), api.listEndpoints().stream().map(x -> x.path("name").asText()).toList());
    }
  }

  @Test
  void autoscalesOnLoadAndSurvivesACoordinatorCrash() throws Exception {
    Path a = kmeans(models.resolve("a"), new float[] {0, 0, 10, 10});
    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .coordinatorProperty("kiln.endpoints.autoscale.target-in-flight", "0.5")
        .coordinatorProperty("kiln.endpoints.autoscale.scale-up-after", "1s")
        .coordinatorProperty("kiln.endpoints.autoscale.scale-down-after", "3s")
        .coordinatorProperty("kiln.endpoints.autoscale.interval", "200ms")
        .readyTimeout(Duration.ofSeconds(120)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      KilnClient api = cluster.client();
      api.createEndpoint(Map.of("name", "auto", "variants", List.of(Map.of("modelUri", a.toString(), "maxInstances", 2))));
      assertEquals("InService", api.awaitEndpoint("auto", READY).path("status").asText());

      AtomicBoolean stop = new AtomicBoolean();
      List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
      List<Thread> clients = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        Thread t = new Thread(() -> {
          while (!stop.get()) {
            KilnClient.Invocation x = api.invokeEndpoint("auto", "application/json", ROW, null);
            if (x.status() != 200) failures.add(x.status() + " " + x.body());
          }
        });
        t.start();
        clients.add(t);
      }
      JsonNode ep = waitFor(api, "auto", e -> e.path("replicas").size() == 2, Duration.ofSeconds(60));
      stop.set(true);
      for (Thread t : clients) t.join();
      assertEquals(List.of(), failures, "requests failed while scaling up");
      assertEquals(2, ep.at("/variants/0/currentInstances").asInt(), ep.toString());
      assertTrue(ep.path("history").toString().contains("replica added"), ep.toString());
      ep = waitFor(api, "auto", e -> e.path("replicas").size() == 1, Duration.ofSeconds(30));
      assertTrue(ep.path("history").toString().contains("replica removed"), ep.toString());

      long pid = ep.at("/replicas/0/pid").asLong();
      cluster.killCoordinator(true);
      assertTrue(alive(pid), "a replica outlives a coordinator killed with SIGKILL");
      cluster.restartCoordinator();
      KilnClient again = cluster.client();
      JsonNode after = waitFor(again, "auto", e -> true, Duration.ofSeconds(30));
      KilnClient.Invocation r = again.invokeEndpoint("auto", "application/json", ROW, null);
      assertEquals(200, r.status(), r.body() + " " + after);
      assertEquals(pid, again.getEndpoint("auto").at("/replicas/0/pid").asLong(), "the running replica was reattached");
      again.deleteEndpoint("auto");
      awaitExit(List.of(pid));
    }
  }

  @Test
  void multiModelServerlessVariantsAndWorkerLoss() throws Exception {
    Path prefix = models.resolve("mm");
    for (int i = 0; i < 12; i++) kmeans(prefix.resolve("m" + i), i % 2 == 0 ? new float[] {0, 0, 10, 10} : new float[] {10, 10, 0, 0});
    Path a = kmeans(models.resolve("a"), new float[] {0, 0, 10, 10});
    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(2).apiPort(0).clusterPort(0).journal("h2")
        .readyTimeout(Duration.ofSeconds(120)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      KilnClient api = cluster.client();
      // multi-model + serverless: every model under the prefix, unloaded after 1 s idle
      String deployed = cli(0, "deploy", "--name", "mm", "--model", prefix.toString(), "--multi-model", "--idle-timeout", "1s",
          "--max-concurrency", "8", "--memory-mb", "256");
      assertTrue(deployed.contains("InService"), deployed);
      JsonNode mm = api.getEndpoint("mm");
      assertTrue(mm.at("/variants/0/multiModel").asBoolean(), mm.toString());
      assertEquals(256, mm.path("memoryMb").asInt(), mm.toString());
      for (int i = 0; i < 12; i++) {
        KilnClient.Invocation x = api.invokeEndpoint("mm", "application/json", ROW, null, "m" + i);
        assertEquals(200, x.status(), x.body());
        assertEquals(i % 2, cluster(x), "model m" + i + ": " + x.body());
        assertTrue(x.coldStartMs() > 0, "the first request to m" + i + " loads it");
      }
      // the model just used is still loaded (the idle timeout is 1 s: an earlier one may be unloaded by now)
      assertEquals(0, api.invokeEndpoint("mm", "application/json", ROW, null, "m11").coldStartMs(), "m11 is loaded");
      KilnClient.Invocation unknown = api.invokeEndpoint("mm", "application/json", ROW, null, "nope");
      assertEquals(404, unknown.status(), unknown.body());
      assertTrue(unknown.body().contains("nope"), unknown.body());
      assertEquals(400, api.invokeEndpoint("mm", "application/json", ROW, null, null).status(), "no target model");
      Thread.sleep(2500); // idle past the timeout: the replica unloads; the next request loads again, not rejected
      KilnClient.Invocation cold = api.invokeEndpoint("mm", "application/json", ROW, null, "m3");
      assertEquals(200, cold.status(), cold.body());
      assertTrue(cold.coldStartMs() > 0, "after the idle timeout the request waits for a load: " + cold);
      String invoked = cli(0, "invoke", "mm", "--data", ROW, "--target-model", "m4");
      assertTrue(invoked.contains("\"predictions\""), invoked);

      // a worker hosting a replica dies: its replica goes with it and the endpoint gets a new one
      api.createEndpoint(Map.of("name", "ha", "variants", List.of(Map.of("modelUri", a.toString(), "instances", 2))));
      JsonNode ha = api.awaitEndpoint("ha", READY);
      assertEquals("InService", ha.path("status").asText(), ha.toString());
      String victim = ha.at("/replicas/0/worker").asText();
      String survivor = ha.at("/replicas/1/worker").asText();
      assertNotEquals(victim, survivor, ha.toString());
      long lostPid = ha.at("/replicas/0/pid").asLong();
      cluster.killWorker(victim, true);
      awaitExit(List.of(lostPid)); // killed with its worker (parent-death signal), not left behind
      for (int i = 0; i < 20; i++) { // still routed to until the worker is downed: the router retries on the other replica
        KilnClient.Invocation x = api.invokeEndpoint("ha", "application/json", ROW, null);
        assertEquals(200, x.status(), "request " + i + " right after the worker died: " + x.body());
      }
      assertTrue(Files.readString(options.logsDir().resolve("coordinator.log")).contains("refused the connection"),
          "the router retried requests that met the dead replica");
      JsonNode healed = waitFor(api, "ha", e -> e.path("replicas").size() == 2
          // whichever notices first: the worker unreachable, or the replica silent in the health rounds
          && e.path("history").toString().contains("replica removed")
          && e.path("replicas").findValues("worker").stream().allMatch(w -> w.asText().equals(survivor)), Duration.ofSeconds(90));
      healed.path("replicas").forEach(x -> assertEquals(survivor, x.path("worker").asText(), healed.toString()));
      for (int i = 0; i < 20; i++) {
        KilnClient.Invocation x = api.invokeEndpoint("ha", "application/json", ROW, null);
        assertEquals(200, x.status(), x.body());
      }

      // the last worker freezes (SIGSTOP) long enough to be downed, then thaws and re-joins with its
      // replicas still running: the coordinator replaced them meanwhile, so it stops them then
      List<Long> frozenReplicas = new ArrayList<>();
      healed.path("replicas").forEach(x -> frozenReplicas.add(x.path("pid").asLong()));
      long workerPid = cluster.node(survivor).orElseThrow().pid();
      signal("STOP", workerPid);
      Thread.sleep(12_000);
      signal("CONT", workerPid);
      JsonNode back = waitFor(api, "ha", e -> e.path("replicas").size() == 2 && e.path("replicas").findValues("pid").stream()
          .noneMatch(p -> frozenReplicas.contains(p.asLong())), Duration.ofSeconds(120));
      awaitExit(frozenReplicas);
      assertEquals(200, api.invokeEndpoint("ha", "application/json", ROW, null).status(), back.toString());
    }
  }

  private static void signal(String sig, long pid) throws Exception {
    assertEquals(0, new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).inheritIO().start().waitFor());
  }

  private static JsonNode waitFor(KilnClient api, String name, java.util.function.Predicate<JsonNode> done, Duration timeout)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    JsonNode e = null;
    while (System.nanoTime() < deadline) {
      try {
        e = api.getEndpoint(name);
        if (done.test(e)) return e;
      } catch (RuntimeException notYet) {
        // the coordinator is restarting
      }
      Thread.sleep(200);
    }
    fail("endpoint " + name + " did not get there in " + timeout.toSeconds() + " s: " + e);
    return e;
  }

  private String cli(int expectedCode, String... args) {
    String[] all = java.util.stream.Stream.concat(java.util.Arrays.stream(args),
        java.util.stream.Stream.of("--data-dir", dataDir.toString())).toArray(String[]::new);
    java.io.StringWriter out = new java.io.StringWriter();
    java.io.StringWriter err = new java.io.StringWriter();
    int code = io.kiln.cli.KilnCli.run(new java.io.PrintWriter(out, true), new java.io.PrintWriter(err, true), all);
    assertEquals(expectedCode, code, "kiln " + String.join(" ", args) + ": " + out + err);
    return out.toString();
  }

  private static void awaitExit(List<Long> pids) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (pids.stream().anyMatch(EndpointsEndToEndTest::alive) && System.nanoTime() < deadline) Thread.sleep(100);
    for (long p : pids) assertFalse(alive(p), "replica " + p + " still runs");
  }

  private static boolean alive(long pid) {
    return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
  }

  private static int cluster(KilnClient.Invocation r) throws Exception {
    return KilnClient.MAPPER.readTree(r.body()).at("/predictions/0/0").asInt();
  }

  private static int status(Runnable call) {
    try {
      call.run();
      return 200;
    } catch (KilnApiException e) {
      return e.status();
    }
  }

  private static int unauthenticated(String url) throws Exception {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(ROW)).build(), HttpResponse.BodyHandlers.discarding()).statusCode();
  }

  /** A two-cluster k-means model folder in two dimensions, as the trainer writes it. */
  static Path kmeans(Path dir, float[] centroids) throws Exception {
    Files.createDirectories(dir);
    ByteBuffer buf = ByteBuffer.allocate(centroids.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float c : centroids) buf.putFloat(c);
    Files.write(dir.resolve("centroids.f32"), buf.array());
    KilnClient.MAPPER.writeValue(dir.resolve("kiln-model.json").toFile(), Map.of("format", "kiln-kmeans-v1",
        "algorithm", "kmeans", "k", 2, "num_features", 2, "centroids_file", "centroids.f32"));
    return dir;
  }
}

package io.kiln.deploy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.deploy.TestModels;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Multi-model (LRU under a budget) and serverless (idle unload) behaviour over real HTTP. */
class MultiModelTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;

  /** Model i has centroids {0,0} and {i,i}: the answer tells which model served. */
  private Path models(int n) throws Exception {
    Path root = tmp.resolve("models");
    for (int i = 1; i <= n; i++) TestModels.kmeans(root.resolve("m" + i), new double[][] {{0, 0}, {i, i}});
    return root;
  }

  @Test
  void evictionStormNeverFailsARequest() throws Exception {
    Path root = models(200);
    try (ModelServer s = ModelServer.start(ModelSource.prefix(root.toUri()),
        ServerOptions.defaults(Http.TOKEN).withBudget(1L << 30, 20))) {
      int port = s.port();
      ExecutorService ex = Executors.newFixedThreadPool(8);
      List<Future<String>> fs = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long seed = t;
        fs.add(ex.submit(() -> {
          Random r = new Random(seed);
          for (int k = 0; k < 150; k++) {
            int i = 1 + r.nextInt(200);
            // a point at the model's second centroid: distance 0 to cluster 1 only for the right model
            HttpResponse<String> res = k % 2 == 0
                ? Http.post(port, "/models/m" + i + "/invoke", "text/csv", i + "," + i)
                : Http.post(port, "/invocations", "text/csv", i + "," + i, "X-Kiln-Target-Model", "m" + i);
            if (res.statusCode() != 200) return "m" + i + ": " + res.statusCode() + " " + res.body();
            if (!res.body().equals("1.0,0.0\n")) return "m" + i + " answered " + res.body();
          }
          return null;
        }));
      }
      for (Future<String> f : fs) assertEquals(null, f.get());
      ex.shutdown();
      JsonNode m = JSON.readTree(Http.get(port, "/metrics").body());
      assertTrue(m.get("evictions").asLong() > 100, m.toString());
      assertTrue(m.get("loaded_models").asInt() <= 20, m.toString());
      assertEquals(0, m.get("errors_5xx").asLong());
      assertEquals(404, Http.post(port, "/models/m999/invoke", "text/csv", "1,1").statusCode());
      assertEquals(400, Http.post(port, "/models/..%2Fx/invoke", "text/csv", "1,1").statusCode());
      HttpResponse<String> r = Http.post(port, "/invocations", "text/csv", "1,1");
      assertEquals(400, r.statusCode());
      assertTrue(r.body().contains("X-Kiln-Target-Model"), r.body());
      Http.post(port, "/models/m5/invoke", "text/csv", "1,1");
      assertEquals(409, Http.post(port, "/models/m5/load", "application/json", "{}").statusCode());
    }
  }

  @Test
  void byteBudgetEvictsAndOversizedModelIs507() throws Exception {
    Path root = models(10);
    long oneModel = io.kiln.deploy.predictor.PredictorLoader.estimateBytes(root.resolve("m1"));
    try (ModelServer s = ModelServer.start(ModelSource.prefix(root.toUri()),
        ServerOptions.defaults(Http.TOKEN).withBudget(oneModel * 3, 1000))) {
      for (int i = 1; i <= 10; i++) assertEquals(200, Http.post(s.port(), "/models/m" + i + "/invoke", "text/csv", "1,1").statusCode());
      assertEquals(3, s.cache().loadedCount());
      assertEquals(List.of("m8", "m9", "m10"), s.cache().loadedNames());
    }
    try (ModelServer s = ModelServer.start(ModelSource.prefix(root.toUri()),
        ServerOptions.defaults(Http.TOKEN).withBudget(oneModel / 2, 1000))) {
      HttpResponse<String> r = Http.post(s.port(), "/models/m1/invoke", "text/csv", "1,1");
      assertEquals(507, r.statusCode());
      assertTrue(r.body().contains("memory budget"), r.body());
    }
  }

  @Test
  void serverlessUnloadsWhenIdleAndReloadsOnNextRequest() throws Exception {
    Path root = models(1);
    try (ModelServer s = ModelServer.start(ModelSource.single("m1", root.resolve("m1").toUri()),
        ServerOptions.defaults(Http.TOKEN).withIdleTimeout(Duration.ofMillis(300)))) {
      int port = s.port();
      HttpResponse<String> r = Http.post(port, "/invocations", "text/csv", "1,1");
      assertEquals(200, r.statusCode());
      assertTrue(r.headers().firstValue("X-Kiln-Cold-Start-Ms").isPresent());
      long deadline = System.nanoTime() + 5_000_000_000L;
      while (s.cache().loadedCount() > 0 && System.nanoTime() < deadline) Thread.sleep(50);
      assertEquals(0, s.cache().loadedCount(), "unloaded after the idle timeout");
      r = Http.post(port, "/invocations", "text/csv", "1,1");
      assertEquals(200, r.statusCode());
      assertEquals("1.0,0.0\n", r.body());
      long cold = Long.parseLong(r.headers().firstValue("X-Kiln-Cold-Start-Ms").orElseThrow());
      assertTrue(cold >= 1 && cold < 5000, "cold start " + cold);
      JsonNode m = JSON.readTree(Http.get(port, "/metrics").body());
      assertTrue(m.get("idle_unloads").asLong() >= 1, m.toString());
      assertEquals(2, m.get("model_loads").asLong(), m.toString());
      assertTrue(m.get("last_cold_start_ms").asLong() >= 1, m.toString());
    }
  }
}

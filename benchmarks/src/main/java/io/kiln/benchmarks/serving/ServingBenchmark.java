package io.kiln.benchmarks.serving;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.deploy.predictor.Predictor;
import io.kiln.deploy.predictor.PredictorLoader;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.ModelDefinitions;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * W4 (endpoint overhead at 1,000 req/s, open loop, vs in-process predict), W6 (multi-model cold load,
 * 1,000 models, budget 100) and W7 (serverless cold start) against real ServeMain processes
 * (docs/benchmarks.md). Usage: {@code ServingBenchmark [w4] [w6] [w7] [w4-router] [--rate 1000] [--seconds 10]};
 * {@code w4-router} (not in the default set) measures a managed endpoint: the same model deployed on a
 * local cluster (a replica hosted by a worker), wrk straight at the replica, through the router's data-plane
 * port ({@code invocationUrl}) and through the router on the coordinator's API port.
 */
public final class ServingBenchmark {
  public static void main(String[] args) throws Exception {
    List<String> which = new ArrayList<>();
    int rate = 1000;
    int seconds = 10;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rate" -> rate = Integer.parseInt(args[++i]);
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        default -> which.add(args[i].toLowerCase(Locale.ROOT));
      }
    }
    if (which.isEmpty()) which = List.of("w4", "w6", "w7");
    Path repo = Path.of(System.getProperty("kiln.home", ".")).toAbsolutePath().normalize();
    Path tmp = Files.createTempDirectory("kiln-serving-bench-");
    Path mlp = writeMlp(tmp.resolve("mlp"));
    if (which.contains("w4")) w4(repo, tmp, mlp, rate, seconds);
    if (which.contains("w4-router")) w4Router(repo, tmp, mlp, rate, seconds);
    if (which.contains("w6")) w6(repo, tmp);
    if (which.contains("w7")) w7(repo, tmp, mlp);
    System.exit(0);
  }

  /** The W1 model's architecture (MLP 784-256-128-10, Xavier-initialised, untrained: latency does not depend on the weights). */
  static Path writeMlp(Path dir) throws Exception {
    Map<String, String> hp = Map.of("hidden", "256,128");
    Block block = ModelDefinitions.get("mlp").build(hp, 10);
    try (Model m = Model.newInstance("model", Device.cpu(), "PyTorch")) {
      m.setBlock(block);
      block.initialize(m.getNDManager(), DataType.FLOAT32, new Shape(1, 784));
      List<String> names = new ArrayList<>();
      for (int i = 0; i < 10; i++) names.add("c" + i);
      ModelArtifacts.write(ArtifactStore.forRoot(dir.toUri()), dir.toUri(), m, new ModelArtifacts.Description("mlp", hp,
          new Shape(784), 28, 28, 10, names, Map.of(), "bench", "bench"));
    }
    return dir;
  }

  static String row(Random r) {
    StringBuilder sb = new StringBuilder("{\"instances\": [[");
    for (int j = 0; j < 784; j++) sb.append(j > 0 ? "," : "").append(r.nextInt(256));
    return sb.append("]]}").toString();
  }

  /** The floor: {@code body}'s row predicted in this JVM, paced at {@code rate} (after a 2 s warm-up); latencies in ns, sorted. */
  static long[] inProcess(Path mlp, String body, int rate, int seconds) throws Exception {
    float[][] x = new float[1][784];
    String[] cells = body.replaceAll("[^0-9,]", "").split(",");
    for (int j = 0; j < 784; j++) x[0][j] = Float.parseFloat(cells[j]);
    try (Predictor p = PredictorLoader.load(mlp)) {
      paced(rate, rate * 2, () -> p.predict(x)); // warm-up
      return paced(rate, rate * seconds, () -> p.predict(x));
    }
  }

  static void w4(Path repo, Path tmp, Path mlp, int rate, int seconds) throws Exception {
    String body = row(new Random(1));
    long[] inproc = inProcess(mlp, body, rate, seconds);
    try (ServeProcess s = new ServeProcess(repo, tmp.resolve("w4-serve.log"), "--model", mlp.toString())) {
      AtomicLong errors = new AtomicLong();
      Work call = () -> {
        if (s.post("/invocations", "application/json", body).statusCode() != 200) errors.incrementAndGet();
      };
      openLoop(rate, rate * 3, call); // warm-up (JIT on both sides, connections)
      errors.set(0);
      long[] http = openLoop(rate, rate * seconds, call);
      System.out.printf(Locale.ROOT, "W4 in-process predict (1 row, MLP 784-256-128-10): p50 %.3f ms p99 %.3f ms (n=%d)%n",
          ms(inproc, 0.5), ms(inproc, 0.99), inproc.length);
      System.out.printf(Locale.ROOT, "W4 HTTP /invocations from this process to ServeMain at %d req/s open loop: p50 %.3f ms "
          + "p99 %.3f ms max %.3f ms (n=%d, errors %d)%n", rate, ms(http, 0.5), ms(http, 0.99), ms(http, 1), http.length, errors.get());
      System.out.printf(Locale.ROOT, "W4 overhead (JDK HttpClient in this JVM): p50 %.3f ms, p99 %.3f ms (target <= 0.2 / <= 2)%n",
          ms(http, 0.5) - ms(inproc, 0.5), ms(http, 0.99) - ms(inproc, 0.99));
      if (WrkLoad.available()) {
        WrkLoad.run("http://127.0.0.1:" + s.port + "/invocations", ServeProcess.TOKEN, body, rate, 3); // warm-up
        WrkLoad.Result w = WrkLoad.run("http://127.0.0.1:" + s.port + "/invocations", ServeProcess.TOKEN, body, rate,
            seconds);
        System.out.printf(Locale.ROOT, "W4 HTTP /invocations from wrk (a second process, paced to ~%d req/s): %.0f req/s, "
            + "p50 %.3f ms p90 %.3f ms p99 %.3f ms max %.3f ms (n=%d, errors %d)%n", rate, w.rate(), w.p50(), w.p90(),
            w.p99(), w.max(), w.requests(), w.errors());
        System.out.printf(Locale.ROOT, "W4 overhead (wrk): p50 %.3f ms, p99 %.3f ms (target <= 0.2 / <= 2)%n",
            w.p50() - ms(inproc, 0.5), w.p99() - ms(inproc, 0.99));
      } else {
        System.out.println("W4: wrk not found (apt-get install wrk): no second-process measurement");
      }
    }
  }

  static void w4Router(Path repo, Path tmp, Path mlp, int rate, int seconds) throws Exception {
    if (!WrkLoad.available()) {
      System.out.println("W4 router: wrk not found (apt-get install wrk)");
      return;
    }
    String body = row(new Random(1));
    long[] inproc = inProcess(mlp, body, rate, seconds);
    Path dataDir = Files.createTempDirectory("kiln-w4-router-");
    try (io.kiln.cli.local.LocalCluster cluster = io.kiln.cli.local.LocalCluster.start(io.kiln.cli.local.LocalCluster.Options
        .builder().repoRoot(repo).dataDir(dataDir).workers(1).apiPort(0).clusterPort(0).killOnExit(true).build())) {
      io.kiln.sdk.KilnClient api = cluster.client();
      api.createEndpoint(Map.of("name", "w4", "variants", List.of(Map.of("modelUri", mlp.toString()))));
      var ep = api.awaitEndpoint("w4", java.time.Duration.ofMinutes(3));
      if (!"InService".equals(ep.path("status").asText())) throw new IllegalStateException("endpoint not in service: " + ep);
      String token = Files.readString(dataDir.resolve("token")).trim();
      String apiPort = cluster.apiUrl() + "/endpoints/w4/invocations";
      String dataPlane = ep.path("invocationUrl").asText();
      String direct = ep.at("/replicas/0/url").asText() + "/invocations";
      System.out.printf(Locale.ROOT, "W4 in-process predict (1 row, MLP 784-256-128-10): p50 %.3f ms p99 %.3f ms (n=%d)%n",
          ms(inproc, 0.5), ms(inproc, 0.99), inproc.length);
      String[][] targets = {{"replica on the worker, direct", direct},
          {"through the router's data-plane port", dataPlane}, {"through the router on the API port", apiPort}};
      for (String[] t : targets) WrkLoad.run(t[1], token, body, rate, 3); // warm-up (JIT of every hop) before any is measured
      WrkLoad.Result first = null;
      for (String[] t : targets) {
        WrkLoad.Result w = WrkLoad.run(t[1], token, body, rate, seconds);
        System.out.printf(Locale.ROOT, "W4 managed endpoint, %s (wrk): %.0f req/s, p50 %.3f ms p99 %.3f ms max %.3f ms "
            + "(n=%d, errors %d); overhead p50 %.3f ms, p99 %.3f ms%s%n", t[0], w.rate(), w.p50(), w.p99(), w.max(), w.requests(),
            w.errors(), w.p50() - ms(inproc, 0.5), w.p99() - ms(inproc, 0.99), first == null ? ""
                : String.format(Locale.ROOT, "; router hop over direct p50 %.3f ms, p99 %.3f ms", w.p50() - first.p50(),
                    w.p99() - first.p99()));
        if (first == null) first = w;
      }
    }
  }

  static void w6(Path repo, Path tmp) throws Exception {
    Path root = tmp.resolve("mme");
    Random r = new Random(6);
    for (int i = 0; i < 1000; i++) kmeans(root.resolve("m" + i), 10, 784, r); // 31 KB of centroids each
    String body = row(r);
    try (ServeProcess s = new ServeProcess(repo, tmp.resolve("w6-serve.log"), "--multi-model", root.toString(),
        "--max-models", "100")) {
      for (int i = 0; i < 300; i++) s.post("/models/m" + (i % 50) + "/invoke", "application/json", body); // JIT warm-up
      List<Long> cold = new ArrayList<>();
      List<Long> warm = new ArrayList<>();
      AtomicLong failures = new AtomicLong();
      ExecutorService ex = Executors.newFixedThreadPool(4);
      List<Future<?>> fs = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        Random tr = new Random(t);
        fs.add(ex.submit(() -> {
          for (int k = 0; k < 1000; k++) {
            // 80% of requests to a hot set of 50 models, 20% uniform over all 1,000 (most of them cold)
            int m = tr.nextInt(5) < 4 ? tr.nextInt(50) : tr.nextInt(1000);
            long t0 = System.nanoTime();
            HttpResponse<String> res = s.post("/models/m" + m + "/invoke", "application/json", body);
            long d = System.nanoTime() - t0;
            if (res.statusCode() != 200) failures.incrementAndGet();
            synchronized (cold) {
              (res.headers().firstValue("X-Kiln-Cold-Start-Ms").isPresent() ? cold : warm).add(d);
            }
          }
          return null;
        }));
      }
      for (Future<?> f : fs) f.get();
      ex.shutdown();
      long[] c = cold.stream().mapToLong(Long::longValue).sorted().toArray();
      long[] w = warm.stream().mapToLong(Long::longValue).sorted().toArray();
      System.out.printf(Locale.ROOT, "W6 1,000 models (k-means 10x784), budget 100 models, 4 clients, 4,000 requests: "
          + "cold p50 %.2f ms p99 %.2f ms (n=%d); warm p50 %.2f ms p99 %.2f ms (n=%d); failures %d%n",
          ms(c, 0.5), ms(c, 0.99), c.length, ms(w, 0.5), ms(w, 0.99), w.length, failures.get());
      System.out.println("W6 server metrics: " + s.get("/metrics"));
    }
  }

  static void w7(Path repo, Path tmp, Path mlp) throws Exception {
    String body = row(new Random(7));
    try (ServeProcess s = new ServeProcess(repo, tmp.resolve("w7-serve.log"), "--model", mlp.toString(),
        "--idle-timeout", "1s")) {
      List<String> lines = new ArrayList<>();
      long[] reload = new long[10];
      for (int i = 0; i <= reload.length; i++) {
        if (i > 0) {
          long deadline = System.nanoTime() + 10_000_000_000L;
          while (!s.get("/metrics").contains("\"loaded_models\":0") && System.nanoTime() < deadline) Thread.sleep(100);
        }
        long t0 = System.nanoTime();
        HttpResponse<String> r = s.post("/invocations", "application/json", body);
        long d = System.nanoTime() - t0;
        String hdr = r.headers().firstValue("X-Kiln-Cold-Start-Ms").orElse("none");
        if (r.statusCode() != 200) throw new IllegalStateException("W7 request failed: " + r.statusCode() + " " + r.body());
        if (i == 0) lines.add(String.format(Locale.ROOT, "first request after the process started: %.1f ms (server load %s ms)", d / 1e6, hdr));
        else reload[i - 1] = d;
      }
      Arrays.sort(reload);
      System.out.println("W7 " + lines.get(0));
      System.out.printf(Locale.ROOT, "W7 after scale-to-zero (idle 1 s), 10 times: client-observed p50 %.1f ms max %.1f ms%n",
          ms(reload, 0.5), ms(reload, 1));
      System.out.println("W7 server metrics: " + s.get("/metrics"));
    }
  }

  interface Work {
    void run() throws Exception;
  }

  /** Calls {@code w} n times at {@code rate}/s on this thread; returns sorted durations (ns). */
  static long[] paced(int rate, int n, Work w) throws Exception {
    long[] d = new long[n];
    long period = 1_000_000_000L / rate;
    long next = System.nanoTime();
    for (int i = 0; i < n; i++) {
      next += period;
      long t0 = System.nanoTime();
      w.run();
      d[i] = System.nanoTime() - t0;
      LockSupport.parkNanos(next - System.nanoTime());
    }
    Arrays.sort(d);
    return d;
  }

  /**
   * Open loop: request i is due at start + i/rate whether or not earlier ones finished; its latency is
   * counted from when it was due (so a stalled server shows up as latency, no coordinated omission).
   */
  static long[] openLoop(int rate, int n, Work w) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(64);
    long[] d = new long[n];
    long period = 1_000_000_000L / rate;
    long start = System.nanoTime() + 1_000_000;
    List<Future<?>> fs = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      long due = start + i * period;
      while (System.nanoTime() < due) LockSupport.parkNanos(Math.max(1, due - System.nanoTime() - 20_000));
      int k = i;
      fs.add(pool.submit(() -> {
        w.run();
        d[k] = System.nanoTime() - due;
        return null;
      }));
    }
    for (Future<?> f : fs) f.get();
    pool.shutdown();
    Arrays.sort(d);
    return d;
  }

  static double ms(long[] sorted, double q) {
    if (sorted.length == 0) return Double.NaN;
    int i = (int) Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[i] / 1e6;
  }

  static void kmeans(Path dir, int k, int f, Random r) throws Exception {
    Files.createDirectories(dir);
    ByteBuffer b = ByteBuffer.allocate(k * f * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < k * f; i++) b.putFloat(r.nextFloat() * 255);
    Files.write(dir.resolve("centroids.f32"), b.array());
    Files.writeString(dir.resolve("kiln-model.json"), "{\"format\":\"kiln-kmeans-v1\",\"algorithm\":\"kmeans\",\"k\":" + k
        + ",\"num_features\":" + f + ",\"centroids_file\":\"centroids.f32\"}\n");
  }
}

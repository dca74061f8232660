package io.kiln.benchmarks.training;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Benchmark W1 (docs/benchmarks.md): data-parallel training of Fashion-MNIST, MLP 784-256-128-10,
 * SGD lr 0.05 momentum 0.9, batch 64 per worker, one thread per worker, one epoch, on a real local
 * Kiln cluster (coordinator + N worker JVMs), beside PyTorch DDP (gloo) in the same invocation.
 *
 * <p>Both measure training throughput from the first to the last step (data loading excluded) and
 * test accuracy on the 10,000 test images.
 *
 * <pre>
 * java -cp benchmarks/target/classes:$(cat benchmarks/target/classpath.txt) \
 *   io.kiln.benchmarks.training.TrainingBenchmark [--workers 2] [--runs 5] [--warmup 1] [--peer ../shared/benchmarks/peers/ddp_fashion_mnist.py]
 * </pre>
 */
public final class TrainingBenchmark {
  private static final Pattern PEER = Pattern.compile("samples_per_s=(\\d+) test_acc=([0-9.]+)");

  record Sample(double samplesPerSec, double accuracy, double commMs, double computeMs) {}

  public static void main(String[] args) throws Exception {
    int workers = 2;
    int runs = 5;
    int warmup = 1;
    Path repo = Path.of(System.getProperty("kiln.home", ".")).toAbsolutePath().normalize();
    Path peer = repo.resolve("../shared/benchmarks/peers/ddp_fashion_mnist.py").normalize();
    String data = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--workers" -> workers = Integer.parseInt(args[++i]);
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        case "--warmup" -> warmup = Integer.parseInt(args[++i]);
        case "--peer" -> peer = Path.of(args[++i]);
        case "--data" -> data = args[++i];
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    Path dataDir = Files.createTempDirectory("kiln-w1-");
    List<Sample> kiln = new ArrayList<>();
    List<Sample> ddp = new ArrayList<>();
    try (LocalCluster cluster = LocalCluster.start(LocalCluster.Options.builder().repoRoot(repo).dataDir(dataDir)
        .workers(workers).apiPort(0).clusterPort(0).killOnExit(true).build())) {
      KilnClient api = cluster.client();
      // Kiln's workers are long-lived JVMs: a warm-up job compiles the hot paths once, as any job
      // after the first on a running cluster finds them. Its numbers are printed, not counted.
      for (int w = 1; w <= warmup; w++) {
        JobView job = api.awaitFinal(api.createJob(spec(workers, data)).id(), Duration.ofMinutes(10), Duration.ofMillis(200));
        System.out.printf(Locale.ROOT, "warm-up %d kiln: %.0f samples/s, test accuracy %.4f (not counted)%n", w,
            metric(job, "samples_per_sec"), job.testAccuracy());
      }
      for (int run = 1; run <= runs; run++) {
        // Alternate Kiln and the peer so that machine noise hits both alike.
        JobView job = api.awaitFinal(api.createJob(spec(workers, data)).id(), Duration.ofMinutes(10), Duration.ofMillis(200));
        if (!job.status().equals("Completed")) throw new IllegalStateException("W1 job " + job.status() + ": " + job.failureReason());
        Sample k = new Sample(metric(job, "samples_per_sec"), job.testAccuracy(), metric(job, "comm_ms_per_step"),
            metric(job, "compute_ms_per_step"));
        kiln.add(k);
        System.out.printf(Locale.ROOT, "run %d kiln: %.0f samples/s, test accuracy %.4f (compute %.2f ms, comm %.2f ms per step)%n",
            run, k.samplesPerSec(), k.accuracy(), k.computeMs(), k.commMs());
        Sample p = runPeer(peer, workers);
        ddp.add(p);
        System.out.printf(Locale.ROOT, "run %d ddp:  %.0f samples/s, test accuracy %.4f%n", run, p.samplesPerSec(), p.accuracy());
      }
    }
    Sample k = median(kiln);
    Sample p = median(ddp);
    System.out.println();
    System.out.printf(Locale.ROOT, "W1 (%d workers, median of %d runs): kiln %.0f samples/s acc %.4f | ddp-gloo %.0f samples/s acc %.4f"
        + " | ratio %.2fx, accuracy delta %+.4f%n", workers, runs, k.samplesPerSec(), k.accuracy(), p.samplesPerSec(),
        p.accuracy(), k.samplesPerSec() / p.samplesPerSec(), k.accuracy() - p.accuracy());
  }

  static Map<String, Object> spec(int workers, String data) {
    return Map.of("name", "w1-mlp", "algorithm", "mlp",
        "hyperparameters", Map.of("epochs", 1, "batch_size", 64, "learning_rate", 0.05, "momentum", 0.9, "hidden", "256,128"),
        "channels", Map.of("train", data),
        "resources", Map.of("workers", workers, "cpusPerWorker", 1, "collective", "ring"));
  }

  static double metric(JobView job, String name) {
    Double v = job.metric(name);
    return v == null ? Double.NaN : v;
  }

  static Sample runPeer(Path script, int workers) throws Exception {
    Process p = new ProcessBuilder("/usr/bin/python3", script.toString(), String.valueOf(workers), "1")
        .redirectErrorStream(true).start();
    String last = null;
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line; (line = r.readLine()) != null; ) {
        if (line.contains("samples_per_s=")) last = line;
      }
    }
    if (p.waitFor() != 0 || last == null) throw new IllegalStateException("the DDP peer failed (exit " + p.exitValue() + ")");
    Matcher m = PEER.matcher(last);
    if (!m.find()) throw new IllegalStateException("cannot read the peer's output: " + last);
    return new Sample(Double.parseDouble(m.group(1)), Double.parseDouble(m.group(2)), Double.NaN, Double.NaN);
  }

  static Sample median(List<Sample> s) {
    List<Sample> sorted = new ArrayList<>(s);
    sorted.sort((a, b) -> Double.compare(a.samplesPerSec(), b.samplesPerSec()));
    return sorted.get(sorted.size() / 2);
  }
}

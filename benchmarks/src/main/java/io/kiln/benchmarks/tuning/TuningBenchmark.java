package io.kiln.benchmarks.tuning;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.KilnClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The tuning benchmark (docs/benchmarks.md, "Tuning: ASHA vs random search"): the W1 MLP on
 * Fashion-MNIST, tuning its learning rate (log scale) and width, with ASHA (Hyperband strategy,
 * epochs as the resource) and with random search, on the same local cluster, with the same
 * parallelism and the same wall-clock budget per tuning job, alternating the two, for several
 * seeds. Reports the best test accuracy each reached within the budget and when (seconds from
 * submission to the end of the best trial's job).
 *
 * <pre>
 * java -Dkiln.home=$PWD -cp benchmarks/target/classes:$(cat benchmarks/target/classpath.txt) \
 *   io.kiln.benchmarks.tuning.TuningBenchmark [--budget-seconds 900] [--seeds 3] [--max-epochs 9] [--min-epochs 1]
 *   [--eta 3] [--parallel 2] [--workers 2] [--data /usr/share/datasets/fashion-mnist]
 * </pre>
 */
public final class TuningBenchmark {

  record Result(String strategy, long seed, double best, double secondsToBest, int trials, int epochsTrained) {}

  public static void main(String[] args) throws Exception {
    int budget = 900;
    int seeds = 3;
    int maxEpochs = 9;
    int minEpochs = 1;
    int eta = 3;
    int parallel = 2;
    int workers = 2;
    Path repo = Path.of(System.getProperty("kiln.home", ".")).toAbsolutePath().normalize();
    String data = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--budget-seconds" -> budget = Integer.parseInt(args[++i]);
        case "--seeds" -> seeds = Integer.parseInt(args[++i]);
        case "--max-epochs" -> maxEpochs = Integer.parseInt(args[++i]);
        case "--min-epochs" -> minEpochs = Integer.parseInt(args[++i]);
        case "--eta" -> eta = Integer.parseInt(args[++i]);
        case "--parallel" -> parallel = Integer.parseInt(args[++i]);
        case "--workers" -> workers = Integer.parseInt(args[++i]);
        case "--data" -> data = Path.of(args[++i]).toAbsolutePath().toString();
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    System.out.printf(Locale.ROOT, "tuning benchmark: budget %d s per tuning job, %d seed(s), epochs %d..%d (eta %d), "
        + "%d parallel trial(s) on %d worker(s), data %s, load average %s%n", budget, seeds, minEpochs, maxEpochs, eta,
        parallel, workers, data, loadAverage());
    Path dataDir = Files.createTempDirectory("kiln-tuning-bench-");
    List<Result> results = new ArrayList<>();
    try (LocalCluster cluster = LocalCluster.start(LocalCluster.Options.builder().repoRoot(repo).dataDir(dataDir)
        .workers(workers).apiPort(0).clusterPort(0).killOnExit(true).build())) {
      KilnClient api = cluster.client();
      for (long seed = 1; seed <= seeds; seed++) {
        // Alternate the strategies so that machine noise hits both alike.
        for (String strategy : List.of("hyperband", "random")) {
          Result r = run(api, strategy, seed, budget, minEpochs, maxEpochs, eta, parallel, data);
          results.add(r);
          System.out.printf(Locale.ROOT, "seed %d %-9s best test accuracy %.4f after %.0f s; %d trials, %d epochs trained%n",
              seed, strategy.equals("hyperband") ? "asha" : strategy, r.best(), r.secondsToBest(), r.trials(), r.epochsTrained());
        }
      }
    }
    System.out.println();
    System.out.println("| strategy | seed | best test accuracy | seconds to best | trials | epochs trained |");
    System.out.println("|---|---:|---:|---:|---:|---:|");
    for (Result r : results) {
      System.out.printf(Locale.ROOT, "| %s | %d | %.4f | %.0f | %d | %d |%n", r.strategy().equals("hyperband") ? "ASHA" : "random",
          r.seed(), r.best(), r.secondsToBest(), r.trials(), r.epochsTrained());
    }
    for (String s : List.of("hyperband", "random")) {
      List<Result> rs = results.stream().filter(r -> r.strategy().equals(s)).toList();
      System.out.printf(Locale.ROOT, "%s: mean best %.4f, mean seconds to best %.0f%n", s.equals("hyperband") ? "ASHA" : "random",
          rs.stream().mapToDouble(Result::best).average().orElse(Double.NaN),
          rs.stream().mapToDouble(Result::secondsToBest).average().orElse(Double.NaN));
    }
    System.out.printf(Locale.ROOT, "load average at the end: %s%n", loadAverage());
  }

  static Map<String, Object> spec(String strategy, long seed, int minEpochs, int maxEpochs, int eta, int parallel, String data) {
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("name", "w1-" + (strategy.equals("hyperband") ? "asha" : strategy) + "-s" + seed);
    s.put("strategy", strategy);
    s.put("seed", seed);
    s.put("objective", Map.of("metric", "test_accuracy", "type", "Maximize"));
    s.put("parameters", List.of(
        Map.of("name", "learning_rate", "type", "continuous", "min", 0.001, "max", 0.5, "scale", "log"),
        Map.of("name", "hidden", "type", "categorical", "values", List.of("64,32", "128,64", "256,128", "512,256"))));
    s.put("maxTrials", 10_000); // the wall-clock budget ends the job
    s.put("maxParallelTrials", parallel);
    Map<String, Object> hp = new LinkedHashMap<>(Map.of("batch_size", 64, "momentum", 0.9));
    if (strategy.equals("hyperband")) {
      s.put("hyperband", Map.of("resource", "epochs", "minResource", minEpochs, "maxResource", maxEpochs, "eta", eta));
    } else {
      hp.put("epochs", maxEpochs); // random search trains every trial fully
    }
    s.put("trainingJob", Map.of("algorithm", "mlp", "hyperparameters", hp, "channels", Map.of("train", data)));
    return s;
  }

  static Result run(KilnClient api, String strategy, long seed, int budget, int minEpochs, int maxEpochs, int eta, int parallel,
                    String data) throws InterruptedException {
    JsonNode created = api.createTuningJob(spec(strategy, seed, minEpochs, maxEpochs, eta, parallel, data));
    String id = created.get("id").asText();
    Instant submitted = Instant.parse(created.get("submittedAt").asText());
    Thread.sleep(Duration.ofSeconds(budget).toMillis());
    api.stopTuningJob(id);
    JsonNode v = api.getTuningJob(id);
    for (int i = 0; i < 600 && !v.get("status").asText().equals("Stopped"); i++) {
      Thread.sleep(500);
      v = api.getTuningJob(id);
    }
    double best = Double.NaN;
    double seconds = Double.NaN;
    int epochs = 0;
    // Only trials that finished inside the budget count (a stop ends the running ones).
    for (JsonNode t : v.get("leaderboard")) {
      if (!t.get("status").asText().equals("Completed")) continue;
      JsonNode job = api.getJson(KilnClient.jobPath(t.get("jobId").asText()));
      double at = Duration.between(submitted, Instant.parse(job.get("endedAt").asText())).toMillis() / 1000.0;
      if (at > budget) continue;
      epochs += (int) job.path("metrics").path("epochs").asDouble(0);
      double acc = t.get("objective").asDouble();
      if (Double.isNaN(best) || acc > best) {
        best = acc;
        seconds = at;
      }
    }
    return new Result(strategy, seed, best, seconds, v.get("trialCounts").get("total").asInt(), epochs);
  }

  static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
    } catch (Exception e) {
      return "unknown";
    }
  }
}

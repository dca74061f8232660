package io.kiln.benchmarks.elastic;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.LogLine;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Benchmark W5 (docs/benchmarks.md) and the chaos suite of the elastic-training issue: the W1 job on
 * three workers, one of them killed with SIGKILL at a random moment of the epoch.
 *
 * <p>Each run trains the same job twice, once per recovery mode, and kills a random worker at a
 * random step in both: {@code elastic} (the survivors regroup and continue from the last completed
 * step) and {@code restart} (every rank restarts from the newest checkpoint, TorchElastic's way,
 * with a checkpoint every {@code --checkpoint-every} steps). It reports for each the time from the
 * kill to training resumed (the first log line of the new generation / of the resumed ranks), the
 * completed steps lost, the job's own exactly-once sample accounting and the test accuracy beside a
 * fault-free run. A killed worker is replaced before the next run.
 *
 * <pre>
 * java -Dkiln.home=$PWD -cp benchmarks/target/classes:$(cat benchmarks/target/classpath.txt) \
 *   io.kiln.benchmarks.elastic.RecoveryBenchmark [--runs 10] [--workers 3] [--data /usr/share/datasets/fashion-mnist]
 * </pre>
 */
public final class RecoveryBenchmark {
  private static final Pattern LEAVES = Pattern.compile("stopped at global step (\\d+)|leaves generation \\d+ at step (\\d+)");
  private static final Pattern ELASTIC_RESUMED = Pattern.compile("^generation (\\d+): rank .* \\(global step (\\d+)\\) from rank");
  private static final Pattern RESTART_RESUMED = Pattern.compile("^resumed from .*global step (\\d+)\\)");
  private static final Pattern LEFT_AT = Pattern.compile("left generation \\d+ at step (-?\\d+)");
  private static final Pattern REATTACHED = Pattern.compile("^re-attached after the coordinator restart: (\\d+) task");

  record Outcome(String mode, String status, double resumeSeconds, long stepAtFailure, long resumedStep, double accuracy,
                 int exactlyOnceEpochs, int accountingErrors, String victim) {
    long stepsLost() {
      return Math.max(0, stepAtFailure - resumedStep);
    }
  }

  static int epochs = 1;

  public static void main(String[] args) throws Exception {
    int runs = 10;
    int workers = 3;
    long seed = 1;
    int checkpointEvery = 100;
    // elastic: kill -9 a worker, survivors continue; restart: the same with recovery "restart";
    // freeze: SIGSTOP a worker for 20 s (a hung node); partition: cut a worker off the network for
    // 25 s (NetworkPartition); coordinator: kill -9 the coordinator
    List<String> modes = List.of("elastic", "restart");
    Path repo = Path.of(System.getProperty("kiln.home", ".")).toAbsolutePath().normalize();
    String data = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        case "--workers" -> workers = Integer.parseInt(args[++i]);
        case "--data" -> data = args[++i];
        case "--seed" -> seed = Long.parseLong(args[++i]);
        case "--checkpoint-every" -> checkpointEvery = Integer.parseInt(args[++i]);
        case "--modes" -> modes = List.of(args[++i].split(","));
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    Random rnd = new Random(seed);
    // a partition is detected by heartbeats (seconds), not by closed sockets: runs with one train
    // 3 epochs (the cut comes in the first) so that the job is still running when it is detected
    epochs = modes.contains("partition") ? 3 : 1;
    Path dataDir = Files.createTempDirectory("kiln-w5-");
    Map<String, List<Outcome>> outcomes = new java.util.LinkedHashMap<>();
    try (LocalCluster cluster = LocalCluster.start(LocalCluster.Options.builder().repoRoot(repo).dataDir(dataDir)
        .workers(workers).apiPort(0).clusterPort(0).killOnExit(true)
        // a partition must cut the data plane too: TCP links only (shared memory ignores the network)
        .workerProperty("kiln.worker.collective-shared-memory", modes.contains("partition") ? "off" : "on")
        .build())) {
      KilnClient api = cluster.client();
      JobView clean = api.awaitFinal(api.createJob(spec("w5-fault-free", workers, data, "elastic", checkpointEvery,
              epochs)).id(),
          Duration.ofMinutes(10), Duration.ofMillis(200));
      require(clean);
      double cleanAcc = clean.testAccuracy();
      int steps = clean.metric("steps").intValue();
      System.out.printf(Locale.ROOT, "fault-free: %d steps, test accuracy %.4f, %.0f samples/s%n", steps, cleanAcc,
          clean.metric("samples_per_sec"));
      for (int run = 1; run <= runs; run++) {
        for (String mode : modes) {
          // a random step between 10% and 50% of the epoch as the job's progress reports it; they
          // arrive about once a second, some 100 steps late here, so the kill lands at 30-85%
          long killAt = (long) (steps * (0.10 + 0.4 * rnd.nextDouble()));
          Map<String, Object> spec = spec("w5-" + mode, workers, data, mode.equals("restart") ? "restart" : "elastic",
              checkpointEvery, epochs);
          Outcome o = runOnce(cluster, api, spec, mode, killAt, rnd);
          outcomes.computeIfAbsent(mode, m -> new ArrayList<>()).add(o);
          System.out.printf(Locale.ROOT, "run %d %-7s kill %s at step ~%d: %s, resumed after %.2f s at step %d (failure at "
              + "step %d: %d completed step(s) lost), accuracy %.4f (%+.4f vs fault-free), exactly-once epochs %d, "
              + "accounting errors %d%n", run, mode, o.victim(), killAt, o.status(), o.resumeSeconds(), o.resumedStep(),
              o.stepAtFailure(), o.stepsLost(), o.accuracy(), o.accuracy() - cleanAcc, o.exactlyOnceEpochs(),
              o.accountingErrors());
        }
      }
      System.out.println();
      outcomes.forEach((mode, outs) -> summary(mode, outs, cleanAcc));
    }
  }

  static Outcome runOnce(LocalCluster cluster, KilnClient api, Map<String, Object> spec, String mode, long killAt,
      Random rnd) throws Exception {
    awaitIdleWorkers(api, 3, Duration.ofMinutes(2));
    String id = api.createJob(spec).id();
    JobView v;
    while (true) {
      v = api.getJob(id);
      if (v.isFinal()) throw new IllegalStateException("job " + id + " ended before the kill: " + v.failureReason());
      if (v.progress() != null && v.progress().step() >= killAt && v.workers().size() >= 3) break;
      Thread.sleep(20);
    }
    String victim = mode.equals("coordinator") ? "coordinator" : v.workers().get(rnd.nextInt(v.workers().size()));
    Instant killed = Instant.now();
    long pid = cluster.node(victim).orElseThrow().pid();
    switch (mode) {
      case "coordinator" -> {
        cluster.killCoordinator(true);
        cluster.restartCoordinator();
      }
      case "partition" -> {
        // cut the worker off from every other node for 25 s (needs root, nftables, net_cls)
        try (NetworkPartition p = NetworkPartition.isolate(pid)) {
          System.out.printf(Locale.ROOT, "  partitioned %s (pid %d, ports %s) for 25 s%n", victim, pid, p.ports);
          Thread.sleep(25_000);
        }
      }
      case "freeze" -> {
        signal("STOP", pid);
        Thread.sleep(20_000);
        signal("CONT", pid);
      }
      default -> {
        cluster.killWorker(victim, true);
        KILLED.add(victim);
      }
    }
    JobView done = api.awaitFinal(id, Duration.ofMinutes(15), Duration.ofMillis(200));
    List<LogLine> log = new ArrayList<>();
    api.streamLogs(id, false, log::add);
    long failureStep = -1;
    long resumedStep = -1;
    double resumeSeconds = Double.NaN;
    for (LogLine l : log) {
      Matcher m = LEAVES.matcher(l.message());
      if (m.find()) failureStep = Math.max(failureStep, Long.parseLong(m.group(1) != null ? m.group(1) : m.group(2)));
      Matcher left = LEFT_AT.matcher(l.message());
      if (left.find()) failureStep = Math.max(failureStep, Long.parseLong(left.group(1)));
      Matcher r = (mode.equals("restart") ? RESTART_RESUMED : mode.equals("coordinator") ? REATTACHED
          : ELASTIC_RESUMED).matcher(l.message());
      if (r.find() && Double.isNaN(resumeSeconds) && Instant.parse(l.at()).isAfter(killed)) {
        resumedStep = Long.parseLong(r.group(r.groupCount()));
        resumeSeconds = Duration.between(killed, Instant.parse(l.at())).toMillis() / 1000.0;
      }
    }
    if (mode.equals("coordinator")) {
      resumedStep = failureStep; // the ranks never stopped; what matters is that nothing restarted
      if (done.history().stream().anyMatch(h -> h.event().equals("Restarted"))) resumedStep = -1;
    }
    // a killed worker is replaced so that every run starts on the same cluster (a frozen one re-joins)
    if (mode.equals("elastic") || mode.equals("restart")) cluster.addWorker();
    cluster.awaitReady(3, Duration.ofSeconds(120), s -> { });
    Double acc = done.testAccuracy();
    return new Outcome(mode, done.status(), resumeSeconds, failureStep, resumedStep, acc == null ? Double.NaN : acc,
        intMetric(done, "epochs_exactly_once"), intMetric(done, "sample_accounting_errors"), victim);
  }

  private static final java.util.Set<String> KILLED = new java.util.HashSet<>();

  /** Every run starts on the same cluster: n workers registered with the scheduler, none busy. */
  static void awaitIdleWorkers(KilnClient api, int n, Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      // a killed worker stays listed until the cluster downs it: not counted
      long idle = api.cluster().stream().filter(w -> !KILLED.contains(w.id()) && w.runningTasks().isEmpty()
          && w.freeCpus() >= 1).count();
      if (idle >= n) return;
      if (System.nanoTime() > deadline) throw new IllegalStateException("only " + idle + " of " + n + " workers idle");
      Thread.sleep(100);
    }
  }

  static void signal(String sig, long pid) throws Exception {
    new ProcessBuilder("kill", "-" + sig, String.valueOf(pid)).inheritIO().start().waitFor();
  }

  static void summary(String mode, List<Outcome> outs, double cleanAcc) {
    List<Double> t = outs.stream().map(Outcome::resumeSeconds).sorted().toList();
    long completed = outs.stream().filter(o -> o.status().equals("Completed")).count();
    long lost = outs.stream().mapToLong(Outcome::stepsLost).sum();
    double worstAcc = outs.stream().mapToDouble(o -> Math.abs(o.accuracy() - cleanAcc)).max().orElse(Double.NaN);
    long exact = outs.stream().filter(o -> o.exactlyOnceEpochs() == epochs && o.accountingErrors() == 0).count();
    System.out.printf(Locale.ROOT, "W5 %-7s: %d/%d completed; resume after kill median %.2f s, max %.2f s; completed steps "
        + "lost total %d (max %d in one run); exactly-once accounting %d/%d; worst accuracy delta %.4f%n", mode, completed,
        outs.size(), t.get(t.size() / 2), t.get(t.size() - 1), lost,
        outs.stream().mapToLong(Outcome::stepsLost).max().orElse(0), exact, outs.size(), worstAcc);
  }

  static Map<String, Object> spec(String name, int workers, String data, String recovery, int checkpointEvery,
      int epochs) {
    Map<String, Object> s = new HashMap<>();
    s.put("name", name);
    s.put("algorithm", "mlp");
    s.put("hyperparameters", Map.of("epochs", epochs, "batch_size", 64, "learning_rate", 0.05, "momentum", 0.9, "hidden", "256,128"));
    s.put("channels", Map.of("train", data));
    s.put("resources", Map.of("workers", Map.of("min", 2, "max", workers), "cpusPerWorker", 1, "collective", "ring",
        "recovery", recovery));
    s.put("checkpoint", Map.of("everySteps", checkpointEvery));
    return s;
  }

  static void require(JobView job) {
    if (!job.status().equals("Completed")) throw new IllegalStateException(job.id() + " " + job.status() + ": " + job.failureReason());
  }

  static int intMetric(JobView job, String name) {
    Double v = job.metric(name);
    return v == null ? -1 : v.intValue();
  }
}

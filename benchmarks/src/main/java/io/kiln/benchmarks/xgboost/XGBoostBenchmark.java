package io.kiln.benchmarks.xgboost;

import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.algorithms.data.Table;
import io.kiln.worker.algorithms.data.TableReader;
import io.kiln.worker.algorithms.xgboost.XGBoostRunner;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.task.TaskRunners;
import io.kiln.worker.training.StopSignal;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import ml.dmlc.xgboost4j.java.Booster;
import ml.dmlc.xgboost4j.java.DMatrix;
import ml.dmlc.xgboost4j.java.XGBoost;

/**
 * Benchmark W3 (docs/benchmarks.md): XGBoost on the first 20,000 Fashion-MNIST training images,
 * multi:softprob, hist, max_depth 6, eta 0.3, 50 rounds, 2 threads, scored on the 10,000 test
 * images. In one invocation, alternating per run:
 * <ol>
 *   <li><b>kiln</b>: Kiln's {@code xgboost} built-in ({@link XGBoostRunner}) through the
 *       {@link TaskRunner} API in this JVM (the code a worker runs for the task, without the
 *       cluster around it): reads the IDX folder, builds the DMatrix, boosts round by round with a
 *       train and validation evaluation after each round, progress reports and stop checks, then
 *       writes the model; its {@code train_seconds} (DMatrix + rounds) is compared;</li>
 *   <li><b>raw</b>: XGBoost4J alone on the same pixels ({@code XGBoost.train}, 50 rounds, no
 *       evaluation), timed from the DMatrix to the last round like the peer;</li>
 *   <li><b>peer</b>: {@code /usr/bin/python3 xgb_fashion_mnist.py 20000} (Debian's xgboost 1.7);</li>
 *   <li><b>kiln x2</b> (unless {@code --no-distributed}): the built-in as two ranks (threads of this
 *       JVM, 1 thread each, a stand-in for the coordinator's rendezvous), each on half the rows.</li>
 * </ol>
 *
 * <pre>
 * java -cp benchmarks/target/classes:$(cat benchmarks/target/classpath.txt) \
 *   io.kiln.benchmarks.xgboost.XGBoostBenchmark [--runs 1] [--rows 20000] [--rounds 50] [--threads 2]
 *   [--data /usr/share/datasets/fashion-mnist] [--peer ../shared/benchmarks/peers/xgb_fashion_mnist.py]
 *   [--no-peer] [--no-distributed]
 * </pre>
 */
public final class XGBoostBenchmark {
  private static final Pattern PEER = Pattern.compile("xgboost (\\S+) rows=(\\d+) train_s=([0-9.]+) test_acc=([0-9.]+)");

  record Sample(double trainSeconds, double wallSeconds, double accuracy) {}

  public static void main(String[] args) throws Exception {
    int runs = 1;
    int rows = 20000;
    int rounds = 50;
    int threads = 2;
    boolean peerOn = true;
    boolean distributed = true;
    Path repo = Path.of(System.getProperty("kiln.home", ".")).toAbsolutePath().normalize();
    Path peer = repo.resolve("../shared/benchmarks/peers/xgb_fashion_mnist.py").normalize();
    String python = "/usr/bin/python3";
    Path data = Path.of("/usr/share/datasets/fashion-mnist");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        case "--rows" -> rows = Integer.parseInt(args[++i]);
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--threads" -> threads = Integer.parseInt(args[++i]);
        case "--data" -> data = Path.of(args[++i]);
        case "--peer" -> peer = Path.of(args[++i]);
        case "--python" -> python = args[++i];
        case "--no-peer" -> peerOn = false;
        case "--no-distributed" -> distributed = false;
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    System.out.printf(Locale.ROOT, "W3 xgboost: Fashion-MNIST %s, first %d rows, multi:softprob, hist, max_depth 6, "
        + "eta 0.3, %d rounds, %d threads; xgboost4j %s; %d CPUs; load average %s%n", data, rows, rounds, threads,
        io.kiln.worker.algorithms.xgboost.XGBoostNative.version(), Runtime.getRuntime().availableProcessors(),
        loadAverage());

    // the same pixels for the raw side: Kiln's IDX reader (pixels / 255, row-major), as the peer does in numpy
    Table train = TableReader.readIdx(data, false, rows);
    Table test = TableReader.readIdx(data, true, 0);

    // warm-up, not counted: loads XGBoost's native library and JIT-compiles the readers once
    raw(train.head(1000), test.head(1000), 2, threads);
    kiln(data, 1000, 2, threads, 1);

    List<Sample> kiln = new ArrayList<>();
    List<Sample> raw = new ArrayList<>();
    List<Sample> py = new ArrayList<>();
    List<Sample> dist = new ArrayList<>();
    String peerVersion = "-";
    for (int run = 1; run <= runs; run++) {
      Sample r = raw(train, test, rounds, threads);
      raw.add(r);
      print(run, "raw xgboost4j", r);
      Sample k = kiln(data, rows, rounds, threads, 1);
      kiln.add(k);
      print(run, "kiln xgboost", k);
      if (peerOn) {
        String[] version = new String[1];
        Sample p = peer(python, peer, rows, version);
        peerVersion = version[0];
        py.add(p);
        print(run, "python peer", p);
      }
      if (distributed) {
        Sample d = kiln(data, rows, rounds, Math.max(1, threads / 2), 2);
        dist.add(d);
        print(run, "kiln x2 ranks", d);
      }
    }
    Sample mk = median(kiln);
    Sample mr = median(raw);
    System.out.printf(Locale.ROOT, "%nRESULT (median of %d run%s; load average now %s)%n", runs, runs == 1 ? "" : "s",
        loadAverage());
    System.out.println("| side | train s | wall s | test accuracy | train time / raw xgboost4j |");
    System.out.println("|---|---:|---:|---:|---:|");
    row("Kiln xgboost built-in (XGBoostRunner, in-process)", mk, mr);
    row("raw XGBoost4J " + io.kiln.worker.algorithms.xgboost.XGBoostNative.version(), mr, mr);
    if (!py.isEmpty()) row("python xgboost " + peerVersion + " (peer)", median(py), mr);
    if (!dist.isEmpty()) row("Kiln xgboost, 2 ranks x " + Math.max(1, threads / 2) + " thread (in-process)",
        median(dist), mr);
    System.out.printf(Locale.ROOT, "kiln / raw train time: %.3fx (target <= 1.10x); accuracy difference %+.4f%n",
        mk.trainSeconds() / mr.trainSeconds(), mk.accuracy() - mr.accuracy());
    if (!py.isEmpty()) {
      System.out.printf(Locale.ROOT, "kiln / python peer train time: %.3fx; raw / python peer: %.3fx%n",
          mk.trainSeconds() / median(py).trainSeconds(), mr.trainSeconds() / median(py).trainSeconds());
    }
    if (!dist.isEmpty()) {
      System.out.printf(Locale.ROOT, "2 ranks vs 1: accuracy difference %+.4f%n", median(dist).accuracy() - mk.accuracy());
    }
  }

  private static Map<String, Object> params(int threads) {
    Map<String, Object> p = new HashMap<>();
    p.put("objective", "multi:softprob");
    p.put("num_class", 10);
    p.put("tree_method", "hist");
    p.put("max_depth", 6);
    p.put("eta", 0.3);
    p.put("nthread", threads);
    return p;
  }

  /** XGBoost4J alone: DMatrix and 50 rounds timed (as the peer times DMatrix + xgb.train), then scored. */
  static Sample raw(Table train, Table test, int rounds, int threads) throws Exception {
    long t0 = System.nanoTime();
    DMatrix d = new DMatrix(train.denseValues(), train.rows(), train.cols(), Float.NaN);
    d.setLabel(train.labels());
    Booster b = XGBoost.train(d, params(threads), rounds, new HashMap<>(), null, null);
    double trainS = (System.nanoTime() - t0) / 1e9;
    DMatrix dt = new DMatrix(test.denseValues(), test.rows(), test.cols(), Float.NaN);
    float[][] p = b.predict(dt);
    int correct = 0;
    for (int i = 0; i < p.length; i++) {
      int arg = 0;
      for (int k = 1; k < p[i].length; k++) if (p[i][k] > p[i][arg]) arg = k;
      if (arg == (int) test.labels()[i]) correct++;
    }
    double wall = (System.nanoTime() - t0) / 1e9;
    b.dispose();
    d.dispose();
    dt.dispose();
    return new Sample(trainS, wall, (double) correct / p.length);
  }

  /**
   * Kiln's built-in through the runner API: one rank, or {@code world} ranks as threads with a
   * stand-in for the coordinator's rendezvous. Returns rank 0's numbers (wall: the whole task,
   * from reading the IDX files to the written model).
   */
  static Sample kiln(Path data, int rows, int rounds, int threads, int world) throws Exception {
    TaskRunner runner = TaskRunners.find("xgboost").orElseThrow(() -> new IllegalStateException(
        "the xgboost runner is not on the class path"));
    Path jobDir = Files.createTempDirectory("kiln-w3-");
    try {
      JobSpec spec = JobSpec.newBuilder().setName("w3").setAlgorithm("xgboost").putChannels("train", data.toString())
          .setResources(Resources.newBuilder().setWorkers(world).setCpusPerWorker(threads))
          .putHyperparameters("objective", "multi:softprob").putHyperparameters("num_class", "10")
          .putHyperparameters("tree_method", "hist").putHyperparameters("max_depth", "6")
          .putHyperparameters("eta", "0.3").putHyperparameters("num_round", Integer.toString(rounds))
          .putHyperparameters("nthread", Integer.toString(threads))
          .putHyperparameters("max_rows", Integer.toString(rows)).build();
      GroupRendezvous[] rendezvous = new GroupRendezvous[world];
      Map<Integer, String> addresses = new TreeMap<>();
      List<AtomicReference<Object>> results = new ArrayList<>();
      List<Thread> threadsList = new ArrayList<>();
      long t0 = System.nanoTime();
      for (int rank = 0; rank < world; rank++) {
        int r = rank;
        TaskAssignment a = TaskAssignment.newBuilder().setJobId("w3").setTaskId("w3-r" + r).setRank(r)
            .setWorldSize(world).setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
        TaskEvents events = new TaskEvents("w3", a.getTaskId(), "bench", rep -> {
          if (rep.getKindCase() == TaskReport.KindCase.RENDEZVOUS) {
            synchronized (addresses) {
              addresses.put(rep.getRendezvous().getRank(), rep.getRendezvous().getDataAddress());
              if (addresses.size() == world) {
                GroupSpec g = GroupSpec.newBuilder().setGeneration(1).addAllDataAddresses(addresses.values())
                    .setBackend("ring").build();
                for (GroupRendezvous gr : rendezvous) gr.formed(g);
              }
            }
          }
        });
        StopSignal stop = new StopSignal();
        rendezvous[r] = new GroupRendezvous(events, stop);
        AtomicReference<Object> result = new AtomicReference<>();
        results.add(result);
        TaskRunner.Context ctx = new TaskRunner.Context(a, events, stop, rendezvous[r], jobDir.toUri(),
            jobDir.resolve("model/").toUri());
        Thread t = new Thread(() -> {
          try {
            result.set(runner.run(ctx));
          } catch (Throwable e) {
            result.set(e);
          }
        }, "w3-rank-" + r);
        threadsList.add(t);
        t.start();
      }
      for (Thread t : threadsList) t.join();
      double wall = (System.nanoTime() - t0) / 1e9;
      Object r0 = results.get(0).get();
      for (AtomicReference<Object> r : results) {
        if (r.get() instanceof Throwable) throw new IllegalStateException("kiln rank failed: " + r.get(),
            (Throwable) r.get());
      }
      Map<String, Double> m = ((TaskRunner.Outcome) r0).metrics();
      return new Sample(m.get("train_seconds"), wall, m.get("validation_accuracy"));
    } finally {
      try (Stream<Path> s = Files.walk(jobDir)) {
        s.sorted(Collections.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  static Sample peer(String python, Path script, int rows, String[] version) throws Exception {
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder(python, script.toString(), Integer.toString(rows)).redirectErrorStream(true).start();
    String match = null;
    StringBuilder all = new StringBuilder();
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        all.append(line).append('\n');
        if (PEER.matcher(line).find()) match = line;
      }
    }
    int rc = p.waitFor();
    double wall = (System.nanoTime() - t0) / 1e9;
    if (rc != 0 || match == null) throw new IllegalStateException("the peer failed (exit " + rc + "): " + all);
    Matcher m = PEER.matcher(match);
    if (!m.find()) throw new IllegalStateException("cannot read the peer's output: " + match);
    version[0] = m.group(1);
    return new Sample(Double.parseDouble(m.group(3)), wall, Double.parseDouble(m.group(4)));
  }

  private static void print(int run, String side, Sample s) {
    System.out.printf(Locale.ROOT, "run %d %-14s train %.2f s (wall %.2f s), test accuracy %.4f%n", run, side,
        s.trainSeconds(), s.wallSeconds(), s.accuracy());
  }

  private static void row(String side, Sample s, Sample raw) {
    System.out.printf(Locale.ROOT, "| %s | %.2f | %.2f | %.4f | %.3fx |%n", side, s.trainSeconds(), s.wallSeconds(),
        s.accuracy(), s.trainSeconds() / raw.trainSeconds());
  }

  static Sample median(List<Sample> xs) {
    return new Sample(med(xs.stream().mapToDouble(Sample::trainSeconds).toArray()),
        med(xs.stream().mapToDouble(Sample::wallSeconds).toArray()),
        med(xs.stream().mapToDouble(Sample::accuracy).toArray()));
  }

  private static double med(double[] v) {
    double[] s = v.clone();
    java.util.Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }

  private static String loadAverage() {
    try {
      String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split(" ");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (Exception e) {
      return "unknown";
    }
  }
}

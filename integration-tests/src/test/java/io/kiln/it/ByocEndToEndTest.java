package io.kiln.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.cli.KilnCli;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bring your own code across real processes ({@link LocalCluster}: a coordinator JVM and two worker
 * JVMs), with Debian's /usr/bin/python3: a scikit-learn and an XGBoost training script, a PyTorch DDP
 * script on two workers (gloo), a processing job, a Java model jar trained by Kiln's loop on two
 * workers, the failure cases (missing entry point, failure file, non-zero exit, max run time, output
 * too large), the source upload API (a CLI that is not on the cluster's data dir), and a script whose
 * worker is killed: the script dies with it, and the job restarts on the other worker from the
 * checkpoint synced while it ran. The files are in src/test/resources/byoc.
 */
class ByocEndToEndTest {
  static final Path SCRIPTS = ClusterEndToEndTest.REPO.resolve("integration-tests/src/test/resources/byoc");
  static final Duration TIMEOUT = Duration.ofSeconds(180);

  @TempDir Path tmp;

  /** A source folder holding these files of src/test/resources/byoc. */
  Path source(String... names) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("src-" + names[0].replaceAll("\\W", "_")));
    for (String n : names) Files.copy(SCRIPTS.resolve(n), dir.resolve(n));
    return dir;
  }

  static Map<String, Object> script(String name, Path source, String program, Map<String, Object> hp) {
    Map<String, Object> h = new HashMap<>(hp);
    h.put("sagemaker_program", program);
    h.put("sagemaker_submit_directory", source.toString());
    Map<String, Object> s = new HashMap<>();
    s.put("name", name);
    s.put("algorithm", "script");
    s.put("hyperparameters", h);
    return s;
  }

  static String cli(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertEquals(0, code, "kiln " + String.join(" ", args) + " failed: " + err);
    return out + "\n" + err;
  }

  static String idOf(String cliOutput) {
    return cliOutput.lines().filter(l -> l.startsWith("job-")).findFirst().orElseThrow(() -> new AssertionError(cliOutput));
  }

  @Test
  void userCodeTrainsPreparesFailsClearlyAndSurvivesItsWorker() throws Exception {
    Path data = Files.createDirectories(tmp.resolve("data"));
    StringBuilder csv = new StringBuilder();
    java.util.Random r = new java.util.Random(3);
    for (int i = 0; i < 200; i++) {
      double a = r.nextGaussian();
      double b = r.nextGaussian();
      csv.append(String.format(java.util.Locale.ROOT, "%.4f,%.4f,%d%n", a, b, a + b > 0 ? 1 : 0));
    }
    Files.writeString(data.resolve("data.csv"), csv);
    Path dataDir = tmp.resolve("kiln");
    LocalCluster.Options o = LocalCluster.Options.builder().repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir)
        .workers(2).apiPort(0).clusterPort(0).journal("h2").readyTimeout(Duration.ofSeconds(150)).killOnExit(true)
        .workerProperty("kiln.worker.script.checkpoint-interval", "1s").workerProperty("kiln.worker.script.kill-grace", "2s")
        .build();
    try (LocalCluster cluster = LocalCluster.start(o)) {
      KilnClient api = cluster.client();
      Map<String, String> jobs = new LinkedHashMap<>();

      // scikit-learn through a CLI that is not on the cluster's data dir: the source goes up through the API
      Path elsewhere = Files.createDirectories(tmp.resolve("laptop"));
      Files.copy(dataDir.resolve("token"), elsewhere.resolve("token"));
      String sk = cli("train", "--name", "sklearn", "--entry-point", "sklearn_train.py", "--source-dir",
          source("sklearn_train.py").toString(), "--channel", "train=" + data, "--hp", "C=0.5", "--metric",
          "accuracy=accuracy: ([0-9.]+)", "--detach", "--api-url", cluster.apiUrl(), "--data-dir", elsewhere.toString());
      assertTrue(sk.contains("(uploaded to " + cluster.apiUrl() + ")"), sk);
      jobs.put("sklearn", idOf(sk));

      Map<String, Object> xgb = script("xgboost", source("xgb_train.py"), "xgb_train.py", Map.of("rounds", 20,
          "kiln_metric_definitions", "[{\"Name\":\"accuracy\",\"Regex\":\"accuracy: ([0-9.]+)\"}]"));
      xgb.put("channels", Map.of("train", data.toString()));
      jobs.put("xgboost", api.createJob(xgb).id());

      Map<String, Object> ddp = script("ddp", source("ddp.py"), "ddp.py", Map.of("kiln_metric_definitions",
          "[{\"Name\":\"loss\",\"Regex\":\"loss: ([0-9.]+)\"},{\"Name\":\"world_size\",\"Regex\":\"world_size: (\\\\d+)\"}]"));
      ddp.put("resources", Map.of("workers", 2));
      jobs.put("ddp", api.createJob(ddp).id());

      jobs.put("processing", idOf(cli("process", "--name", "prep", "--entry-point", "prep.py", "--source-dir",
          source("prep.py").toString(), "--input", "raw=" + data, "--output", "train", "--output", "test="
              + tmp.resolve("datasets/test"), "--arg", "--test-fraction", "--arg", "0.25", "--detach", "--data-dir",
          dataDir.toString())));

      Path jar = ModelJars.wideNet(tmp.resolve("jar"));
      jobs.put("java", idOf(cli("train", "--name", "wide-net", "--jar", jar.toString(), "--model-class",
          "com.example.WideNet", "--channel", "train=" + ClusterEndToEndTest.SMALL_DATA, "--hp", "epochs=2", "--hp",
          "width=96", "--workers", "2", "--detach", "--data-dir", dataDir.toString())));

      // the failures
      Path failing = source("fail_file.sh", "boom.py", "sleepy.sh", "big.sh");
      jobs.put("no-entry", api.createJob(script("no-entry", failing, "nope.py", Map.of())).id());
      jobs.put("failure-file", api.createJob(script("failure-file", failing, "fail_file.sh", Map.of())).id());
      jobs.put("exit-1", api.createJob(script("exit-1", failing, "boom.py", Map.of())).id());
      Map<String, Object> slow = script("slow", failing, "sleepy.sh", Map.of());
      slow.put("stopping", Map.of("maxRuntimeSeconds", 2));
      jobs.put("timeout", api.createJob(slow).id());
      jobs.put("too-large", api.createJob(script("too-large", failing, "big.sh", Map.of("kiln_max_output_mb", 1))).id());

      Map<String, JobView> done = new LinkedHashMap<>();
      for (Map.Entry<String, String> j : jobs.entrySet()) {
        done.put(j.getKey(), api.awaitFinal(j.getValue(), TIMEOUT, Duration.ofMillis(500)));
      }
      for (String ok : List.of("sklearn", "xgboost", "ddp", "processing", "java")) {
        assertEquals("Completed", done.get(ok).status(), ok + ": " + done.get(ok).failureReason());
      }
      assertTrue(done.get("sklearn").metric("accuracy") > 0.9, String.valueOf(done.get("sklearn").metrics()));
      assertTrue(Files.exists(Path.of(URI.create(done.get("sklearn").modelUri())).resolve("model.joblib")));
      assertTrue(done.get("xgboost").metric("accuracy") > 0.9, String.valueOf(done.get("xgboost").metrics()));
      assertTrue(Files.exists(Path.of(URI.create(done.get("xgboost").modelUri())).resolve("xgboost-model.json")));
      JobView d = done.get("ddp");
      assertEquals(2, d.workers().size(), String.valueOf(d.workers()));
      assertEquals(2.0, d.metric("world_size"));
      assertTrue(d.metric("loss") < 0.01, String.valueOf(d.metrics()));
      assertTrue(Files.exists(Path.of(URI.create(d.modelUri())).resolve("model.pt")));
      JobView prep = api.getJob(jobs.get("processing"));
      assertEquals(150, Files.readAllLines(Path.of(URI.create(prep.outputs().get("train"))).resolve("data.csv")).size());
      assertEquals(50, Files.readAllLines(tmp.resolve("datasets/test/data.csv")).size());
      JobView java = done.get("java");
      assertEquals(2, java.workers().size());
      assertTrue(java.testAccuracy() > 0.6, String.valueOf(java.metrics()));
      Path javaModel = Path.of(URI.create(java.modelUri()));
      assertTrue(Files.readString(javaModel.resolve("model.json")).contains("java:com.example.WideNet"));
      assertTrue(Files.exists(javaModel.resolve("model.jar")));

      assertFailed(done.get("no-entry"), "entry point 'nope.py' not found in the source");
      assertFailed(done.get("failure-file"), "bad input: column 3 is not a number");
      assertFailed(done.get("exit-1"), "exit code 1; last ");
      assertTrue(done.get("exit-1").failureReason().contains("ValueError: boom: the data has no rows"),
          done.get("exit-1").failureReason());
      assertFailed(done.get("timeout"), "max runtime of 2 s exceeded");
      assertFailed(done.get("too-large"), "output too large: model/, output/ and checkpoints/ hold 1.7 MB");

      // A script whose worker is killed (SIGKILL): the script dies with the worker, and the job restarts
      // on the other worker from the checkpoint synced to the store while the script ran.
      Path pids = tmp.resolve("pids");
      Map<String, Object> resumable = script("resumable", source("resumable.py"), "resumable.py", Map.of(
          "pid-file", pids.toString(), "kiln_metric_definitions",
          "[{\"Name\":\"step\",\"Regex\":\"step: (\\\\d+)\"},{\"Name\":\"resumed_from\",\"Regex\":\"resumed_from: (\\\\d+)\"}]"));
      String id = api.createJob(resumable).id();
      JobView running = awaitStep(api, id, 4);
      long firstPid = Long.parseLong(Files.readAllLines(pids).get(0).trim());
      assertTrue(ProcessHandle.of(firstPid).map(ProcessHandle::isAlive).orElse(false));
      cluster.killWorker(running.workers().get(0), true);
      JobView resumed = api.awaitFinal(id, TIMEOUT, Duration.ofMillis(500));
      assertFalse(ProcessHandle.of(firstPid).map(ProcessHandle::isAlive).orElse(false), "the script outlived its worker");
      assertEquals("Completed", resumed.status(), resumed.failureReason());
      assertTrue(resumed.history().stream().anyMatch(h -> h.event().equals("Restarted")), String.valueOf(resumed.history()));
      assertTrue(resumed.metric("resumed_from") >= 2, "resumed from step " + resumed.metric("resumed_from"));
      assertEquals(resumed.metric("resumed_from") + 3, resumed.metric("step"));
    }
  }

  static void assertFailed(JobView v, String reason) {
    assertEquals("Failed", v.status(), v.name() + " " + v.failureReason());
    assertTrue(v.failureReason() != null && v.failureReason().contains(reason), v.name() + ": " + v.failureReason());
  }

  static JobView awaitStep(KilnClient api, String id, long step) throws InterruptedException {
    long deadline = System.nanoTime() + TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      JobView v = api.getJob(id);
      if (v.progress() != null && v.progress().step() >= step && !v.workers().isEmpty()) return v;
      assertFalse(v.isFinal(), "ended early: " + v.status() + " " + v.failureReason());
      Thread.sleep(200);
    }
    throw new AssertionError("job " + id + " did not reach step " + step);
  }
}

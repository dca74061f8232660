package io.kiln.worker.script;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.CheckpointConfig;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.StoppingCondition;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.task.TaskRunners;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import io.kiln.worker.training.TaskStoppedException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** ScriptRunner with real processes (Debian's /usr/bin/python3, bash), through TaskRunner.Context. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ScriptRunnerTest {
  static final String PYTHON = "/usr/bin/python3";

  /** Each rank on its own thread (the common pool may have a single thread on small machines). */
  static final java.util.concurrent.ExecutorService POOL = java.util.concurrent.Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "script-test");
    t.setDaemon(true);
    return t;
  });

  @TempDir Path tmp;

  // ------------------------------------------------------------------ plumbing

  /** One task's context and what it reported. */
  final class Task {
    final TaskAssignment assignment;
    final List<TaskReport> reports = new CopyOnWriteArrayList<>();
    final StopSignal stop = new StopSignal();
    final TaskEvents events;
    final GroupRendezvous rendezvous;
    final Path jobDir;

    Task(JobSpec spec, int rank, int world) {
      this(spec, rank, world, r -> { });
    }

    /** {@code coordinator} also sees every report (after it is recorded). */
    Task(JobSpec spec, int rank, int world, java.util.function.Consumer<TaskReport> coordinator) {
      jobDir = tmp.resolve("artifacts/jobs/job-1");
      assignment = TaskAssignment.newBuilder().setJobId("job-1").setTaskId("job-1-r" + rank).setRank(rank)
          .setWorldSize(world).setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
      events = new TaskEvents("job-1", assignment.getTaskId(), "w-" + rank, r -> {
        reports.add(r);
        coordinator.accept(r);
      });
      rendezvous = new GroupRendezvous(events, stop);
    }

    TaskRunner.Context context() {
      URI job = URI.create(jobDir.toAbsolutePath().toUri().toString().replaceFirst("/?$", "/"));
      return new TaskRunner.Context(assignment, events, stop, rendezvous, job, job.resolve("model/"));
    }

    TaskRunner.Outcome run() throws Exception {
      return new ScriptRunner(options()).run(context());
    }

    List<String> logLines() {
      events.flushLogs();
      return reports.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.LOGS)
          .flatMap(r -> r.getLogs().getLinesList().stream()).map(l -> l.getMessage()).collect(Collectors.toList());
    }

    List<Map<String, Double>> progressMetrics() {
      return reports.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.PROGRESS)
          .map(r -> r.getProgress().getMetricsMap()).collect(Collectors.toList());
    }
  }

  ScriptRunner.Options options() {
    return ScriptRunner.Options.defaults(tmp.resolve("worker-data")).withKillGrace(Duration.ofSeconds(1))
        .withRendezvousTimeout(Duration.ofSeconds(30));
  }

  /** A source folder holding {@code files} (name, content pairs). */
  Path source(String... files) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("src-" + System.nanoTime()));
    for (int i = 0; i < files.length; i += 2) {
      Path f = dir.resolve(files[i]);
      Files.createDirectories(f.getParent());
      Files.writeString(f, files[i + 1]);
    }
    return dir;
  }

  static JobSpec.Builder spec(Path source, String program, String... hp) {
    JobSpec.Builder b = JobSpec.newBuilder().setName("s").setAlgorithm("script")
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1))
        .putHyperparameters(ScriptSpec.PROGRAM, program);
    if (source != null) b.putHyperparameters(ScriptSpec.SUBMIT_DIRECTORY, source.toUri().toString());
    for (int i = 0; i < hp.length; i += 2) b.putHyperparameters(hp[i], hp[i + 1]);
    return b;
  }

  static String metrics(String... nameRegex) {
    JsonArray a = new JsonArray();
    for (int i = 0; i < nameRegex.length; i += 2) {
      JsonObject o = new JsonObject();
      o.addProperty("Name", nameRegex[i]);
      o.addProperty("Regex", nameRegex[i + 1]);
      a.add(o);
    }
    return a.toString();
  }

  static boolean pythonHas(String module) {
    try {
      Process p = new ProcessBuilder(PYTHON, "-c", "import " + module).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
      return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (Exception e) {
      return false;
    }
  }

  /** Whether the process runs (a zombie, dead but not reaped yet by init, does not count). */
  static boolean alive(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
      return !stat.substring(stat.lastIndexOf(')') + 2).startsWith("Z");
    } catch (Exception e) {
      return false;
    }
  }

  // ------------------------------------------------------------------ tests

  @Test
  void registeredAsTheScriptAlgorithm() {
    assertInstanceOf(ScriptRunner.class, TaskRunners.find("script").orElseThrow());
  }

  @Test
  void scikitLearnScriptTrainsAndItsModelAndMetricReachTheArtifactStore() throws Exception {
    assumeTrue(pythonHas("sklearn"), "python3-sklearn is not installed");
    // two separable blobs
    Path data = Files.createDirectories(tmp.resolve("data/train"));
    Random rnd = new Random(7);
    StringBuilder csv = new StringBuilder("x1,x2,y\n");
    for (int i = 0; i < 200; i++) {
      int y = i % 2;
      csv.append(String.format(Locale.ROOT, "%.4f,%.4f,%d%n", rnd.nextGaussian() + 3 * y, rnd.nextGaussian() - 2 * y, y));
    }
    Files.writeString(data.resolve("data.csv"), csv);
    Path src = source("train.py", String.join("\n",
        "import argparse, os, numpy as np, joblib",
        "from sklearn.linear_model import LogisticRegression",
        "p = argparse.ArgumentParser()",
        "p.add_argument('--C', type=float, default=1.0)",
        "p.add_argument('--max_iter', type=int, default=100)",
        "a = p.parse_args()",
        "d = np.loadtxt(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'data.csv'), delimiter=',', skiprows=1)",
        "x, y = d[:, :2], d[:, 2]",
        "m = LogisticRegression(C=a.C, max_iter=a.max_iter).fit(x, y)",
        "print('train accuracy: %.4f' % m.score(x, y))",
        "joblib.dump(m, os.path.join(os.environ['SM_MODEL_DIR'], 'model.joblib'))",
        "open(os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'report.txt'), 'w').write('C=%s\\n' % a.C)",
        ""), "util/helper.py", "X = 1\n");
    // packaged like the SageMaker SDK / kiln train do: a tar.gz
    Path tgz = tmp.resolve("sourcedir.tar.gz");
    Process tar = new ProcessBuilder("tar", "-czf", tgz.toString(), "-C", src.toString(), ".").inheritIO().start();
    assertEquals(0, tar.waitFor());
    Task t = new Task(spec(null, "train.py", "C", "0.5", "max_iter", "200")
        .putHyperparameters(ScriptSpec.SUBMIT_DIRECTORY, tgz.toUri().toString())
        .putHyperparameters(ScriptSpec.METRIC_DEFINITIONS, metrics("train_accuracy", "train accuracy: ([0-9.]+)"))
        .putChannels("train", data.toString()).build(), 0, 1);

    TaskRunner.Outcome out = t.run();

    assertEquals(t.jobDir.resolve("model").toUri().toString(), out.modelUri());
    assertTrue(Files.size(t.jobDir.resolve("model/model.joblib")) > 0);
    assertEquals("C=0.5\n", Files.readString(t.jobDir.resolve("output/report.txt")));
    double acc = out.metrics().get("train_accuracy");
    assertTrue(acc > 0.8, "accuracy " + acc);
    assertTrue(out.metrics().containsKey("train_seconds"));
    assertTrue(t.progressMetrics().stream().anyMatch(m -> m.containsKey("train_accuracy")), t.reports.toString());
    assertTrue(t.logLines().stream().anyMatch(l -> l.startsWith("train accuracy: ")), t.logLines().toString());
    assertFalse(Files.exists(tmp.resolve("worker-data/jobs/job-1-r0")), "the task's directory is removed on success");
  }

  @Test
  void environmentArgumentsAndConfigFilesFollowTheSageMakerContract() throws Exception {
    Path train = Files.createDirectories(tmp.resolve("data/train"));
    Files.writeString(train.resolve("a.csv"), "1,2\n");
    Path testFile = Files.writeString(tmp.resolve("data/test.csv"), "3,4\n");
    Path src = source("dump.py", String.join("\n",
        "import json, os, sys",
        "out = os.environ['SM_MODEL_DIR']",
        "cfg = os.environ['SM_INPUT_CONFIG_DIR']",
        "files = {n: json.load(open(os.path.join(cfg, n))) for n in os.listdir(cfg)}",
        "chan = {c: sorted(os.listdir(os.environ['SM_CHANNEL_' + c.upper()])) for c in json.loads(os.environ['SM_CHANNELS'])}",
        "head = open(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'a.csv')).read()",
        "json.dump({'env': dict(os.environ), 'argv': sys.argv, 'cwd': os.getcwd(), 'files': files, 'channels': chan,",
        "           'head': head, 'mode': oct(os.stat(os.environ['SAGEMAKER_BASE_DIR']).st_mode & 0o777)},",
        "          open(os.path.join(out, 'dump.json'), 'w'))",
        ""));
    JobSpec spec = spec(src, "dump.py", "learning_rate", "0.1", "epochs", "3", "name", "my model",
        "layers", "[64, 32]", "sagemaker_region", "\"us-east-1\"", "kiln_extra", "x")
        .putChannels("train", "file:" + train).putChannels("test", testFile.toString())
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(2).setGpusPerWorker(0)).build();
    Task t = new Task(spec, 0, 1);
    t.run();

    JsonObject d = JsonParser.parseString(Files.readString(t.jobDir.resolve("model/dump.json"))).getAsJsonObject();
    JsonObject env = d.getAsJsonObject("env");
    Path base = tmp.resolve("worker-data/jobs/job-1-r0/ml").toAbsolutePath();
    assertEquals(base.toString(), env.get("SAGEMAKER_BASE_DIR").getAsString());
    assertEquals("0o700", d.get("mode").getAsString());
    assertEquals(base.resolve("code").toString(), d.get("cwd").getAsString());
    assertEquals("dump.py", env.get("SAGEMAKER_PROGRAM").getAsString());
    assertEquals("job-1", env.get("TRAINING_JOB_NAME").getAsString());
    assertEquals(base.resolve("model").toString(), env.get("SM_MODEL_DIR").getAsString());
    assertEquals(base.resolve("input").toString(), env.get("SM_INPUT_DIR").getAsString());
    assertEquals(base.resolve("input/config").toString(), env.get("SM_INPUT_CONFIG_DIR").getAsString());
    assertEquals(base.resolve("output").toString(), env.get("SM_OUTPUT_DIR").getAsString());
    assertEquals(base.resolve("output/data").toString(), env.get("SM_OUTPUT_DATA_DIR").getAsString());
    assertEquals(base.resolve("input/data/train").toString(), env.get("SM_CHANNEL_TRAIN").getAsString());
    assertEquals(base.resolve("input/data/test").toString(), env.get("SM_CHANNEL_TEST").getAsString());
    assertEquals("[\"test\",\"train\"]", env.get("SM_CHANNELS").getAsString());
    assertEquals("algo-1", env.get("SM_CURRENT_HOST").getAsString());
    assertEquals("[\"algo-1\"]", env.get("SM_HOSTS").getAsString());
    assertEquals("0", env.get("SM_NUM_GPUS").getAsString());
    assertEquals("2", env.get("SM_NUM_CPUS").getAsString());
    assertEquals("20", env.get("SM_LOG_LEVEL").getAsString());
    assertEquals("0.1", env.get("SM_HP_LEARNING_RATE").getAsString());
    assertEquals("my model", env.get("SM_HP_NAME").getAsString());
    assertEquals(base.resolve("checkpoints").toString(), env.get("KILN_CHECKPOINT_DIR").getAsString());
    for (String k : env.keySet()) {
      assertFalse(k.startsWith("SM_HP_SAGEMAKER") || k.startsWith("SM_HP_KILN"), k);
      assertFalse(k.equals("MASTER_ADDR") || k.equals("RANK"), "single rank gets no torchrun variables: " + k);
    }
    // SM_HPS: values decoded as the SageMaker toolkit does; reserved keys stripped
    JsonObject hps = JsonParser.parseString(env.get("SM_HPS").getAsString()).getAsJsonObject();
    assertEquals(Set4.of("epochs", "layers", "learning_rate", "name"), hps.keySet());
    assertEquals(3, hps.get("epochs").getAsInt());
    assertTrue(hps.get("epochs").getAsJsonPrimitive().isNumber());
    assertEquals(0.1, hps.get("learning_rate").getAsDouble());
    assertEquals("my model", hps.get("name").getAsString());
    assertEquals(32, hps.getAsJsonArray("layers").get(1).getAsInt());
    JsonArray args = JsonParser.parseString(env.get("SM_USER_ARGS").getAsString()).getAsJsonArray();
    List<String> expectedArgs = List.of("--epochs", "3", "--layers", "[64, 32]", "--learning_rate", "0.1", "--name",
        "my model");
    assertEquals(expectedArgs, strings(args));
    List<String> argv = strings(d.getAsJsonArray("argv"));
    assertEquals("dump.py", argv.get(0));
    assertEquals(expectedArgs, argv.subList(1, argv.size()));
    JsonObject training = JsonParser.parseString(env.get("SM_TRAINING_ENV").getAsString()).getAsJsonObject();
    assertEquals(base.resolve("model").toString(), training.get("model_dir").getAsString());
    assertEquals(3, training.getAsJsonObject("hyperparameters").get("epochs").getAsInt());
    assertEquals("dump", training.get("module_name").getAsString());
    // the config files
    JsonObject files = d.getAsJsonObject("files");
    JsonObject hpFile = files.getAsJsonObject("hyperparameters.json");
    assertEquals(Set4.of("epochs", "layers", "learning_rate", "name"), hpFile.keySet());
    assertEquals("3", hpFile.get("epochs").getAsString());
    assertTrue(hpFile.get("epochs").getAsJsonPrimitive().isString(), "values are strings, like SageMaker's");
    JsonObject rc = files.getAsJsonObject("resourceconfig.json");
    assertEquals("algo-1", rc.get("current_host").getAsString());
    assertEquals("lo", rc.get("network_interface_name").getAsString());
    assertEquals(JsonParser.parseString(env.get("SM_RESOURCE_CONFIG").getAsString()), rc);
    JsonObject idc = files.getAsJsonObject("inputdataconfig.json");
    assertEquals(Set4.of("test", "train"), idc.keySet());
    assertEquals("File", idc.getAsJsonObject("train").get("TrainingInputMode").getAsString());
    assertEquals(JsonParser.parseString(env.get("SM_INPUT_DATA_CONFIG").getAsString()), idc);
    // the channels' files
    assertEquals("[\"a.csv\"]", d.getAsJsonObject("channels").get("train").toString());
    assertEquals("[\"test.csv\"]", d.getAsJsonObject("channels").get("test").toString());
    assertEquals("1,2\n", d.get("head").getAsString());
  }

  /** Set.of for assertEquals against a JsonObject's key set. */
  static final class Set4 {
    static java.util.Set<String> of(String... s) {
      return new java.util.TreeSet<>(List.of(s));
    }
  }

  static List<String> strings(JsonArray a) {
    List<String> out = new ArrayList<>();
    a.forEach(e -> out.add(e.getAsString()));
    return out;
  }

  @Test
  void failureFileBecomesTheReason() throws Exception {
    Path src = source("fail.sh", String.join("\n",
        "echo 'about to fail'",
        "printf 'ValueError: bad input column x%.0s' $(seq 1 1) > \"$SM_OUTPUT_DIR/failure\"",
        "head -c 3000 /dev/zero | tr '\\0' 'z' >> \"$SM_OUTPUT_DIR/failure\"",
        "exit 3", ""));
    Task t = new Task(spec(src, "fail.sh").build(), 0, 1);
    ScriptFailedException e = assertThrows(ScriptFailedException.class, t::run);
    assertTrue(e.getMessage().startsWith("ValueError: bad input column x"), e.getMessage());
    assertEquals(ScriptExecution.FAILURE_CHARS, e.getMessage().length());
    assertFalse(Files.exists(t.jobDir.resolve("model")), "no model after a failure");
    assertTrue(Files.isDirectory(tmp.resolve("worker-data/jobs/job-1-r0/ml")), "kept for inspection");
  }

  @Test
  void nonZeroExitWithoutFailureFileGivesTheExitCodeAndTheLastLines() throws Exception {
    Path src = source("crash.py", "import sys\nfor i in range(1, 31):\n    print('line %d' % i)\nsys.exit(7)\n");
    Task t = new Task(spec(src, "crash.py").build(), 0, 1);
    ScriptFailedException e = assertThrows(ScriptFailedException.class, t::run);
    StringBuilder expected = new StringBuilder("exit code 7; last 20 lines of stdout:");
    for (int i = 11; i <= 30; i++) expected.append("\nline ").append(i);
    assertEquals(expected.toString(), e.getMessage());
    assertTrue(t.logLines().contains("line 1"));

    // with something on stderr (a traceback), stderr's last lines are the reason
    Path src2 = source("raise.py", "for i in range(50):\n    print('noise', i)\nraise ValueError('bad column x')\n");
    Task t2 = new Task(spec(src2, "raise.py").build(), 0, 1);
    String m = assertThrows(ScriptFailedException.class, t2::run).getMessage();
    assertTrue(m.startsWith("exit code 1; last 4 lines of stderr:\nTraceback (most recent call last):"), m);
    assertTrue(m.endsWith("ValueError: bad column x"), m);
    assertFalse(m.contains("noise"), m);
  }

  @Test
  void aScriptKilledBySignalSaysSo() throws Exception {
    Path src = source("die.sh", "kill -9 $$\n");
    Task t = new Task(spec(src, "die.sh").build(), 0, 1);
    String m = assertThrows(ScriptFailedException.class, t::run).getMessage();
    assertEquals("exit code 137 (killed by signal 9: SIGKILL, e.g. out of memory); the script printed nothing", m);
  }

  @Test
  void aFailedScriptReportsThroughTheTrainingTask() {
    Path src;
    try {
      src = source("fail.sh", "echo 'CUDA out of memory' > \"$SM_OUTPUT_DIR/failure\"; exit 1\n");
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
    Task t = new Task(spec(src, "fail.sh").build(), 0, 1);
    // through the seam: TrainingTask finds the runner by algorithm name (it reads kiln.data-dir itself)
    System.setProperty("kiln.data-dir", tmp.resolve("worker-data").toString());
    try {
      com.typesafe.config.ConfigFactory.invalidateCaches();
      new TrainingTask(t.assignment, t.events, t.stop, GradientSyncFactory.SINGLE_RANK_ONLY,
          tmp.resolve("artifacts").toUri()).run();
    } finally {
      System.clearProperty("kiln.data-dir");
      com.typesafe.config.ConfigFactory.invalidateCaches();
    }
    TaskReport last = t.reports.get(t.reports.size() - 1);
    assertEquals(TaskReport.KindCase.FAILED, last.getKindCase(), t.reports.toString());
    assertEquals("script failed: CUDA out of memory", last.getFailed().getReason());
  }

  @Test
  void missingEntryPointFailsBeforeAnythingRuns() throws Exception {
    Path src = source("train.py", "print('hi')\n", "lib/util.py", "\n");
    Task t = new Task(spec(src, "trian.py").build(), 0, 1);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, t::run);
    assertTrue(e.getMessage().contains("entry point 'trian.py' not found"), e.getMessage());
    assertTrue(e.getMessage().contains("lib/util.py, train.py"), e.getMessage());

    Task none = new Task(JobSpec.newBuilder().setName("s").setAlgorithm("script").build(), 0, 1);
    e = assertThrows(IllegalArgumentException.class, none::run);
    assertTrue(e.getMessage().startsWith("no entry point: hyperparameters.sagemaker_program is required"),
        e.getMessage());

    Task escape = new Task(spec(src, "../../etc/passwd").build(), 0, 1);
    e = assertThrows(IllegalArgumentException.class, escape::run);
    assertTrue(e.getMessage().contains("inside the source directory"), e.getMessage());

    Task noSource = new Task(spec(tmp.resolve("nowhere.tar.gz"), "train.py").build(), 0, 1);
    e = assertThrows(IllegalArgumentException.class, noSource::run);
    assertTrue(e.getMessage().contains("does not exist on this worker"), e.getMessage());
  }

  @Test
  void maxRuntimeKillsTheWholeProcessTree() throws Exception {
    Path pids = tmp.resolve("pids");
    // the script ignores SIGTERM (so SIGKILL is needed), starts a child and a grandchild, and waits
    Path src = source("hang.sh", String.join("\n",
        "trap '' TERM",
        "sleep 300 &",
        "echo $! >> " + pids,
        "bash -c 'sleep 300 & echo $! >> " + pids + "; wait' &",
        "echo $! >> " + pids,
        "echo $$ >> " + pids,
        "echo ready",
        "while true; do sleep 0.2; done", ""));
    Task t = new Task(spec(src, "hang.sh").setStopping(StoppingCondition.newBuilder().setMaxRuntimeSeconds(2)).build(),
        0, 1);
    long t0 = System.nanoTime();
    ScriptFailedException e = assertThrows(ScriptFailedException.class, t::run);
    double seconds = (System.nanoTime() - t0) / 1e9;
    assertTrue(e.getMessage().startsWith("max runtime of 2 s exceeded"), e.getMessage());
    assertTrue(seconds < 10, "took " + seconds + " s");
    List<Long> ids = Files.readAllLines(pids).stream().map(String::trim).filter(s -> !s.isEmpty())
        .map(Long::parseLong).toList();
    assertEquals(4, ids.size(), ids.toString());
    for (long pid : ids) {
      long deadline = System.nanoTime() + 3_000_000_000L;
      while (alive(pid) && System.nanoTime() < deadline) Thread.sleep(20);
      assertFalse(alive(pid), "process " + pid + " survived");
    }
    assertTrue(t.logLines().stream().anyMatch(l -> l.contains("SIGKILL")), t.logLines().toString());
  }

  @Test
  void stopRequestEndsTheScriptAndItsCheckpointsAreUploaded() throws Exception {
    Path src = source("loop.py", String.join("\n",
        "import os, time",
        "open(os.path.join('/', os.environ['KILN_CHECKPOINT_DIR'], 'ckpt-1.txt'), 'w').write('step 1')",
        "print('ready', flush=True)",
        "time.sleep(300)", ""));
    Task t = new Task(spec(src, "loop.py").build(), 0, 1);
    CompletableFuture<Throwable> result = CompletableFuture.supplyAsync(() -> {
      try {
        t.run();
        return null;
      } catch (Throwable e) {
        return e;
      }
    }, POOL);
    long deadline = System.nanoTime() + 20_000_000_000L;
    while (t.logLines().stream().noneMatch("ready"::equals) && System.nanoTime() < deadline) Thread.sleep(50);
    t.stop.stop("user asked");
    Throwable e = result.get(20, TimeUnit.SECONDS);
    assertInstanceOf(TaskStoppedException.class, e);
    assertEquals("user asked", e.getMessage());
    assertEquals("step 1", Files.readString(t.jobDir.resolve("checkpoints/ckpt-1.txt")));
  }

  @Test
  void checkpointsAreRestoredBeforeTheRunAndUploadedAfter() throws Exception {
    Files.createDirectories(tmp.resolve("artifacts/jobs/job-1/checkpoints/sub"));
    Files.writeString(tmp.resolve("artifacts/jobs/job-1/checkpoints/sub/state.txt"), "41");
    Path src = source("resume.sh", String.join("\n",
        "set -e",
        "n=$(cat /opt/ml/none 2>/dev/null || cat \"$SAGEMAKER_BASE_DIR/checkpoints/sub/state.txt\")",
        "echo \"resumed at $n\"",
        "echo $((n + 1)) > \"$SAGEMAKER_BASE_DIR/checkpoints/sub/state.txt\"",
        "echo done > \"$SAGEMAKER_BASE_DIR/checkpoints/new.txt\"", ""));
    Task t = new Task(spec(src, "resume.sh", "kiln_metric_definitions", metrics("resumed", "resumed at (\\d+)"))
        .build(), 0, 1);
    TaskRunner.Outcome out = t.run();
    assertEquals(41.0, out.metrics().get("resumed"));
    assertEquals("42", Files.readString(t.jobDir.resolve("checkpoints/sub/state.txt")).trim());
    assertEquals("done", Files.readString(t.jobDir.resolve("checkpoints/new.txt")).trim());

    // resume_from another job's folder
    Path other = tmp.resolve("other-job/checkpoints");
    Files.createDirectories(other.resolve("sub"));
    Files.writeString(other.resolve("sub/state.txt"), "7");
    Task t2 = new Task(spec(src, "resume.sh", "kiln_metric_definitions", metrics("resumed", "resumed at (\\d+)"))
        .setCheckpoint(CheckpointConfig.newBuilder().setResumeFrom(tmp.resolve("other-job").toString())).build(), 0, 1);
    assertEquals(7.0, t2.run().metrics().get("resumed"));
  }

  @Test
  void withoutCgroupsTheMemoryLimitIsAnAddressSpaceLimit() throws Exception {
    Path src = source("limit.sh", "echo \"vmem $(ulimit -v)\"\n");
    Task t = new Task(spec(src, "limit.sh", "kiln_metric_definitions", metrics("vmem_kb", "vmem (\\d+)"))
        .setResources(Resources.newBuilder().setWorkers(1).setMemoryMbPerWorker(512)).build(), 0, 1);
    ScriptRunner.Options noCgroups = options().withSandbox(options().sandbox().withCgroups("off"));
    assertEquals(512.0 * 1024, new ScriptRunner(noCgroups).run(t.context()).metrics().get("vmem_kb"));
  }

  @Test
  void twoRankPyTorchDdpAllReducesOverGloo() throws Exception {
    assumeTrue(pythonHas("torch.distributed"), "python3-torch is not installed");
    Path src = source("ddp.py", String.join("\n",
        "import os, torch, torch.distributed as dist",
        "dist.init_process_group('gloo', init_method='env://')",
        "r, w = dist.get_rank(), dist.get_world_size()",
        "assert r == int(os.environ['RANK']) and os.environ['LOCAL_RANK'] == '0'",
        "assert os.environ['SM_CURRENT_HOST'] == 'algo-%d' % (r + 1), os.environ['SM_CURRENT_HOST']",
        "t = torch.tensor([float(r + 1), 10.0 * (r + 1)])",
        "dist.all_reduce(t)",
        "print('sum %.1f world %d' % (t[0].item(), w))",
        "if r == 0:",
        "    torch.save(t, os.path.join(os.environ['SM_MODEL_DIR'], 'sum.pt'))",
        "else:",
        "    open(os.path.join(os.environ['SM_MODEL_DIR'], 'rank1.txt'), 'w').write('x')",
        "dist.destroy_process_group()", ""));
    JobSpec spec = spec(src, "ddp.py", "kiln_metric_definitions", metrics("sum", "sum ([0-9.]+)", "world",
        "world (\\d+)")).setResources(Resources.newBuilder().setWorkers(2).setCpusPerWorker(1)).build();
    // the coordinator's part: once both ranks reported their rendezvous, form the group
    Map<Integer, TaskRendezvous> seen = new ConcurrentHashMap<>();
    List<GroupRendezvous> members = new CopyOnWriteArrayList<>();
    java.util.function.Consumer<TaskReport> coordinator = rep -> {
      if (rep.getKindCase() != TaskReport.KindCase.RENDEZVOUS) return;
      seen.put(rep.getRendezvous().getRank(), rep.getRendezvous());
      if (seen.size() == 2) {
        GroupSpec g = GroupSpec.newBuilder().setGeneration(1).setBackend("ring")
            .addDataAddresses(seen.get(0).getDataAddress()).addDataAddresses(seen.get(1).getDataAddress()).build();
        members.forEach(m -> m.formed(g));
      }
    };
    Task r0 = new Task(spec, 0, 2, coordinator);
    Task r1 = new Task(spec, 1, 2, coordinator);
    members.add(r0.rendezvous);
    members.add(r1.rendezvous);
    List<CompletableFuture<TaskRunner.Outcome>> runs = new ArrayList<>();
    for (Task task : List.of(r0, r1)) {
      runs.add(CompletableFuture.supplyAsync(() -> {
        try {
          return task.run();
        } catch (Exception e) {
          throw new IllegalStateException(e.getMessage() + "\n" + task.reports, e);
        }
      }, POOL));
    }
    TaskRunner.Outcome o0 = runs.get(0).get(50, TimeUnit.SECONDS);
    TaskRunner.Outcome o1 = runs.get(1).get(50, TimeUnit.SECONDS);
    assertEquals(3.0, o0.metrics().get("sum"));
    assertEquals(3.0, o1.metrics().get("sum"));
    assertEquals(2.0, o0.metrics().get("world"));
    assertEquals(o0.modelUri(), o1.modelUri());
    assertTrue(Files.exists(r0.jobDir.resolve("model/sum.pt")));
    assertFalse(Files.exists(r0.jobDir.resolve("model/rank1.txt")), "only rank 0 uploads the model");
    TaskRendezvous rv0 = seen.get(0);
    assertEquals("script", rv0.getBackend());
    assertTrue(rv0.getDataAddress().matches("127\\.0\\.0\\.1:\\d+") && !rv0.getDataAddress().endsWith(":0"),
        rv0.getDataAddress());
  }
}

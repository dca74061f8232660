package io.kiln.worker.script;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.sandbox.Cgroups;
import io.kiln.worker.sandbox.SandboxSettings;
import io.kiln.worker.sandbox.TaskUsers;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The limits around a script, with real processes: cgroup memory, CPU and process limits, output
 * and log volume, per-task uids, and continuous checkpoint upload. Tests of a mechanism the machine
 * lacks (no writable cgroup, not root) are skipped, and say so.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ScriptLimitsTest {
  @TempDir Path tmp;

  final List<TaskReport> reports = new CopyOnWriteArrayList<>();

  ScriptRunner.Options options() {
    return ScriptRunner.Options.defaults(tmp.resolve("worker-data")).withKillGrace(Duration.ofSeconds(1));
  }

  TaskRunner.Context context(JobSpec spec, String taskId) {
    Path jobDir = tmp.resolve("artifacts/jobs/job-1");
    TaskAssignment a = TaskAssignment.newBuilder().setJobId("job-1").setTaskId(taskId).setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
    TaskEvents events = new TaskEvents("job-1", taskId, "w-0", reports::add);
    StopSignal stop = new StopSignal();
    URI job = URI.create(jobDir.toAbsolutePath().toUri().toString().replaceFirst("/?$", "/"));
    return new TaskRunner.Context(a, events, stop, new GroupRendezvous(events, stop), job, job.resolve("model/"));
  }

  Path source(String name, String content) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("src-" + System.nanoTime()));
    Files.writeString(dir.resolve(name), content);
    return dir;
  }

  static JobSpec.Builder spec(Path source, String program, String... hp) {
    return ScriptRunnerTest.spec(source, program, hp);
  }

  String fails(ScriptRunner.Options o, JobSpec spec) {
    return assertThrows(ScriptFailedException.class, () -> new ScriptRunner(o).run(context(spec, "t-" + System.nanoTime())))
        .getMessage();
  }

  static boolean cgroups() {
    return Cgroups.detect(SandboxSettings.defaults()).available();
  }

  // ------------------------------------------------------------------ cgroups

  @Test
  void theMemoryCgroupKillsAScriptAboveItsLimitAndTheReasonSaysOutOfMemory() throws Exception {
    assumeTrue(cgroups(), "no writable cgroup hierarchy with the memory controller here");
    // 400 MB touched page by page: far above the 64 MB limit, so the kernel's OOM killer ends it
    Path src = source("hog.py", "b = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
        + "print('survived')\n");
    String m = fails(options(), spec(src, "hog.py").setResources(Resources.newBuilder().setWorkers(1)
        .setMemoryMbPerWorker(64)).build());
    assertTrue(m.startsWith("out of memory: the task reached its memory limit of 64 MB"), m);
  }

  @Test
  void theScriptRunsInItsOwnCgroupWithACpuQuotaAndAProcessLimit() throws Exception {
    assumeTrue(cgroups(), "no writable cgroup hierarchy here");
    // 30 background sleeps under pids.max 10: some cannot be started
    Path src = source("procs.py", "import subprocess\n"
        + "print('in_task_cgroups', sum('kiln/task-' in l for l in open('/proc/self/cgroup')))\n"
        + "kids = []\n"
        + "for i in range(30):\n"
        + "    try: kids.append(subprocess.Popen(['sleep', '5']))\n"
        + "    except OSError: pass\n"
        + "print('running', len(kids))\n"
        + "for k in kids: k.kill()\n");
    TaskRunner.Outcome out = new ScriptRunner(options().withMaxPids(10)).run(context(spec(src, "procs.py",
        "kiln_metric_definitions", ScriptRunnerTest.metrics("in_task_cgroups", "in_task_cgroups (\\d+)",
            "running", "running (\\d+)")).setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1))
        .build(), "t-procs"));
    assertTrue(out.metrics().get("in_task_cgroups") >= 1, String.valueOf(out.metrics()));
    assertTrue(out.metrics().get("running") < 10, "pids.max 10 allowed " + out.metrics().get("running") + " sleeps");
    assertTrue(logs().stream().anyMatch(l -> l.contains("sandbox: cgroup") && l.contains("1 CPU")
        && l.contains("pids.max 10")), String.join("\n", logs()));
  }

  // ------------------------------------------------------------------ output limits

  @Test
  void aModelFolderAboveTheOutputLimitFailsTheTask() throws Exception {
    Path src = source("big.sh", "for i in 1 2 3; do head -c 600000 /dev/zero > \"$SM_MODEL_DIR/part$i\"; done\n"
        + "sleep 30\n");
    long t0 = System.nanoTime();
    String m = fails(options(), spec(src, "big.sh", "kiln_max_output_mb", "1").build());
    assertTrue(m.startsWith("output too large: model/, output/ and checkpoints/ hold 1.7 MB, more than the limit of "
        + "1 MB"), m);
    assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20), "ended by the check, not by the script");
  }

  @Test
  void aSingleFileAboveTheOutputLimitIsStoppedByTheFileSizeLimit() throws Exception {
    // Python ignores SIGXFSZ, so the write fails with EFBIG and the script exits with its traceback
    Path src = source("one.py", "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm.bin'), 'wb')"
        + ".write(b'0' * 3000000)\n");
    String m = fails(options(), spec(src, "one.py", "kiln_max_output_mb", "1").build());
    assertTrue(m.contains("exit code 1") && m.contains("File too large"), m);
  }

  @Test
  void moreLogThanTheLimitFailsTheTask() throws Exception {
    Path src = source("chatty.py", "import time\nfor i in range(30000): print('x' * 100)\ntime.sleep(30)\n");
    String m = fails(options(), spec(src, "chatty.py", "kiln_max_log_mb", "1").build());
    assertTrue(m.startsWith("output too large: the script wrote more than 1 MB of log"), m);
  }

  // ------------------------------------------------------------------ checkpoints

  @Test
  void checkpointsReachTheStoreWhileTheScriptRuns() throws Exception {
    Path store = tmp.resolve("artifacts/jobs/job-1/checkpoints/ckpt-1.txt");
    Path src = source("ckpt.sh", "echo state-1 > \"$KILN_CHECKPOINT_DIR/ckpt-1.txt\"\n"
        + "for i in $(seq 100); do [ -f " + store + " ] && { echo seen_in_store 1; exit 0; }; sleep 0.1; done\n"
        + "echo seen_in_store 0\n");
    TaskRunner.Outcome out = new ScriptRunner(options().withCheckpointInterval(Duration.ofMillis(200))).run(context(
        spec(src, "ckpt.sh", "kiln_metric_definitions", ScriptRunnerTest.metrics("seen", "seen_in_store (\\d)"))
            .build(), "t-ckpt"));
    assertEquals(1.0, out.metrics().get("seen"), "the script saw its checkpoint in the store before it ended");
    assertEquals("state-1\n", Files.readString(store));
    assertTrue(reports.stream().anyMatch(r -> r.getKindCase() == TaskReport.KindCase.CHECKPOINT
        && r.getCheckpoint().getUri().endsWith("/jobs/job-1/checkpoints/")), "the job is told about it");
  }

  // ------------------------------------------------------------------ uids

  @Test
  void eachTaskRunsAsItsOwnUidAndCannotReadAnotherTasksDirectory() throws Exception {
    assumeTrue(TaskUsers.runningAsRoot(), "needs root to switch uids");
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwx--x--x"));
    // another task's directory, as the sandbox leaves it: mode 700, not the script's uid
    Path other = Files.createDirectories(tmp.resolve("worker-data/jobs/other-task/ml"));
    Files.writeString(other.resolve("secret"), "s3cret");
    Files.setPosixFilePermissions(other.getParent(), PosixFilePermissions.fromString("rwx------"));
    Path src = source("peek.sh", "echo \"uid $(id -u)\"\ncat " + other.resolve("secret") + " 2>/dev/null "
        + "&& echo read 1 || echo read 0\necho ok > \"$SM_MODEL_DIR/m.txt\"\n");
    Files.setPosixFilePermissions(src, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.setPosixFilePermissions(src.resolve("peek.sh"), PosixFilePermissions.fromString("rw-r--r--"));
    ScriptRunner.Options o = options().withSandbox(options().sandbox().withUidRange("200100-200109",
        tmp.resolve("uid-locks")));
    TaskRunner.Outcome out = new ScriptRunner(o).run(context(spec(src, "peek.sh", "kiln_metric_definitions",
        ScriptRunnerTest.metrics("uid", "uid (\\d+)", "read", "read (\\d)")).build(), "t-uid"));
    assertEquals(200100.0, out.metrics().get("uid"));
    assertEquals(0.0, out.metrics().get("read"), "the other task's file was readable");
    assertEquals("ok\n", Files.readString(tmp.resolve("artifacts/jobs/job-1/model/m.txt")));
  }

  @Test
  void twoLeasesNeverShareAUid() throws Exception {
    assumeTrue(TaskUsers.runningAsRoot(), "needs root");
    try (TaskUsers.Lease a = TaskUsers.lease("200200-200201", tmp.resolve("locks"));
         TaskUsers.Lease b = TaskUsers.lease("200200-200201", tmp.resolve("locks"))) {
      assertNotEquals(a.uid(), b.uid());
      String m = assertThrows(java.io.IOException.class, () -> TaskUsers.lease("200200-200201", tmp.resolve("locks")))
          .getMessage();
      assertTrue(m.contains("in use"), m);
    }
    assertThrows(IllegalArgumentException.class, () -> TaskUsers.parseRange("5-1"));
  }

  // ------------------------------------------------------------------ worker death

  @Test
  void whenTheWorkerDiesTheScriptAndItsChildrenDie() throws Exception {
    // A stand-in worker (bash) starts a script through the sandbox prefix; SIGKILL to the stand-in
    // must end the script and the child it started, as SIGKILL to a worker JVM would.
    Path pids = tmp.resolve("pids");
    try (io.kiln.worker.sandbox.Sandbox sb = io.kiln.worker.sandbox.Sandbox.open(SandboxSettings.defaults()
        .withCgroups("off"), "death", io.kiln.worker.sandbox.TaskLimits.NONE, w -> { })) {
      List<String> cmd = new java.util.ArrayList<>(sb.prefix());
      cmd.addAll(List.of("/bin/sh", "-c", "sleep 300 & echo $$ $! > " + pids + "; wait"));
      StringBuilder quoted = new StringBuilder();
      for (String c : cmd) quoted.append('\'').append(c.replace("'", "'\\''")).append("' ");
      Process worker = new ProcessBuilder("/bin/bash", "-c", quoted + "& wait").start();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (!(Files.exists(pids) && Files.readString(pids).trim().contains(" ")) && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      String[] p = Files.readString(pids).trim().split(" ");
      long script = Long.parseLong(p[0]);
      long child = Long.parseLong(p[1]);
      assertTrue(ScriptRunnerTest.alive(script) && ScriptRunnerTest.alive(child));
      worker.destroyForcibly().waitFor();
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while ((ScriptRunnerTest.alive(script) || ScriptRunnerTest.alive(child)) && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      assertFalse(ScriptRunnerTest.alive(script), "the script outlived its worker");
      assertFalse(ScriptRunnerTest.alive(child), "the script's child outlived the worker");
    }
  }

  List<String> logs() {
    return reports.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.LOGS)
        .flatMap(r -> r.getLogs().getLinesList().stream()).map(l -> l.getMessage()).toList();
  }

}

package io.kiln.worker.script;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.sandbox.Sandbox;
import io.kiln.worker.sandbox.TaskLimits;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * One run of a script task, start to finish, on the calling thread:
 *
 * <ol>
 *   <li>read the script settings ({@link ScriptSpec}); lay out the base directory
 *       {@code <data-dir>/jobs/<task-id>/ml} (mode 700, emptied first); open the task's
 *       {@link Sandbox} (cgroup, uid);
 *   <li>unpack the source into {@code code/} and check the entry point;
 *   <li>link the channels into {@code input/data/<channel>/}; copy {@code <job>/checkpoints/} (or
 *       {@code spec.checkpoint.resume_from}) into {@code checkpoints/};
 *   <li>distributed jobs: rendezvous (rank 0 publishes {@code host:port} for {@code MASTER_ADDR});
 *   <li>write {@code input/config/*.json}, build the environment, run the script in the sandbox
 *       ({@link ScriptProcess}): logs, metrics, max run time, stop requests, output and log limits;
 *       rank 0 syncs {@code checkpoints/} to the store every {@code checkpointInterval};
 *   <li>exit 0: upload {@code model/} (rank 0) and {@code output/data/}; otherwise fail with
 *       {@code output/failure}, what the sandbox knows (out of memory) or the exit code and the last
 *       log lines;
 *   <li>always: end what is left in the sandbox; rank 0 uploads {@code checkpoints/}; on success the
 *       base directory is deleted.
 * </ol>
 */
final class ScriptExecution {
  static final int FAILURE_CHARS = ScriptProcess.FAILURE_CHARS;
  static final int TAIL_LINES = ScriptProcess.TAIL_LINES;
  private static final Duration OUTPUT_CHECK_INTERVAL = Duration.ofSeconds(2);

  private final TaskRunner.Context ctx;
  private final ScriptRunner.Options options;
  /** The job's folder and the model folder (with a trailing '/', so that resolve() stays inside). */
  private final URI jobUri;
  private final URI modelUri;
  private final TaskAssignment assignment;
  private final JobSpec spec;
  private final TaskEvents events;
  private final int rank;
  private final int world;
  private ScriptProcess process;

  // the layout
  private Path taskDir;
  private Path base;
  private Path configDir;
  private Path dataDir;
  private Path modelDir;
  private Path outputDir;
  private Path outputDataDir;
  private Path checkpointDir;
  private Path codeDir;

  ScriptExecution(TaskRunner.Context ctx, ScriptRunner.Options options) {
    this.ctx = ctx;
    this.options = options;
    this.assignment = ctx.assignment();
    this.spec = assignment.getSpec();
    this.events = ctx.events();
    this.rank = assignment.getRank();
    this.world = Math.max(1, assignment.getWorldSize());
    this.jobUri = folder(ctx.jobUri());
    this.modelUri = folder(ctx.modelUri());
  }

  /** {@code file:///...} folder form with a trailing '/' (as TrainingTask's URIs). */
  private static URI folder(URI u) {
    return ModelArtifacts.folder(u);
  }

  TaskRunner.Outcome run() throws Exception {
    ScriptSpec script = ScriptSpec.fromSpec(spec);
    process = new ScriptProcess(events, ctx.stop(), assignment.getTaskId(), script.metrics());
    layOut();
    CheckpointSync sync = rank == 0 ? new CheckpointSync(checkpointDir, folder(jobUri.resolve("checkpoints/")), events,
        () -> (long) process.metric("step").orElse(0)) : null;
    long maxOutput = script.maxOutputMb() > 0 ? script.maxOutputMb() << 20 : options.maxOutputBytes();
    long maxLog = script.maxLogMb() > 0 ? script.maxLogMb() << 20 : options.maxLogBytes();
    long memory = Math.max(0, spec.getResources().getMemoryMbPerWorker()) << 20;
    TaskLimits limits = new TaskLimits(memory, Math.max(0, spec.getResources().getCpusPerWorker()), options.maxPids(),
        maxOutput);
    boolean succeeded = false;
    Sandbox sandbox = null;
    try {
      sandbox = Sandbox.open(options.sandbox(), taskDir.getFileName().toString(), limits, events::warn);
      Path entry = UserCode.installSource(script.program(), script.submitDirectory(), codeDir, events);
      linkChannels();
      restoreCheckpoints();
      if (sync != null) sync.restored();
      ctx.stop().check();
      Map<String, String> distributed = world > 1 ? rendezvous() : Map.of();
      ctx.stop().check();
      Map<String, String> env = new TrainingContract(assignment, rank, world, new TrainingContract.Layout(base, configDir,
          dataDir, modelDir, outputDir, outputDataDir, checkpointDir, codeDir)).write(script, distributed);
      env.putAll(sandbox.environment(taskDir));
      sandbox.handOver(taskDir);
      events.info(sandbox.describe());
      List<String> user = new ArrayList<>(UserCode.interpreter(entry, codeDir, options.python(), events));
      user.addAll(TrainingContract.arguments(script.hyperparameters()));
      long maxRuntime = spec.getStopping().getMaxRuntimeSeconds();
      events.info("running " + String.join(" ", user) + " in " + codeDir
          + (maxRuntime > 0 ? " (max runtime " + maxRuntime + " s)" : ""));
      List<String> command = new ArrayList<>(sandbox.prefix());
      command.addAll(user);
      OutputLimit output = new OutputLimit(List.of(modelDir, outputDir, checkpointDir), maxOutput,
          "model/, output/ and checkpoints/");
      List<ScriptProcess.Periodic> periodic = new ArrayList<>();
      periodic.add(new ScriptProcess.Periodic(OUTPUT_CHECK_INTERVAL, output));
      if (sync != null) {
        periodic.add(new ScriptProcess.Periodic(options.checkpointInterval(), () -> {
          sync.syncInBackground();
          return null;
        }));
      }
      long t0 = System.nanoTime();
      int exit = process.run(command, codeDir, env, new ScriptProcess.Limits(maxRuntime, maxLog, options.killGrace()),
          periodic);
      double seconds = (System.nanoTime() - t0) / 1e9;
      Sandbox sb = sandbox;
      sb.cgroup().flatMap(c -> c.peakMemoryBytes()).ifPresent(b -> events.info(String.format(Locale.ROOT,
          "peak memory of the task's cgroup: %.1f MB", b / 1048576.0)));
      if (exit != 0) {
        throw new ScriptFailedException(process.failureReason(exit, outputDir.resolve("failure"), sb.explain(exit)));
      }
      String tooLarge = output.get();
      if (tooLarge != null) throw new ScriptFailedException(tooLarge);
      events.info(String.format(Locale.ROOT, "the script exited with code 0 after %.1f s", seconds));
      if (rank == 0) uploadResults();
      else if (!UserCode.isEmptyTree(modelDir)) events.info("model/ of rank " + rank + " is not uploaded (only rank 0's is)");
      Map<String, Double> out = new LinkedHashMap<>(process.lastMetrics());
      out.putIfAbsent("train_seconds", seconds);
      succeeded = true;
      return new TaskRunner.Outcome(modelUri.toString(), out);
    } finally {
      if (sandbox != null) sandbox.close();
      if (sync != null) {
        try {
          sync.sync(true);
        } catch (RuntimeException e) {
          events.warn("cannot upload checkpoints/: " + e);
        }
      }
      if (succeeded) {
        UserCode.deleteTree(taskDir);
      } else {
        events.info("the task's directory is kept for inspection: " + base);
      }
    }
  }

  // ------------------------------------------------------------------ layout

  private void layOut() throws IOException {
    taskDir = UserCode.taskDirectory(options.dataDir(), assignment.getTaskId().isBlank() ? assignment.getJobId()
        : assignment.getTaskId());
    base = taskDir.resolve("ml");
    Files.createDirectories(base);
    UserCode.ownerOnly(base);
    configDir = base.resolve("input/config");
    dataDir = base.resolve("input/data");
    modelDir = base.resolve("model");
    outputDir = base.resolve("output");
    outputDataDir = outputDir.resolve("data");
    checkpointDir = base.resolve("checkpoints");
    codeDir = base.resolve("code");
    for (Path p : List.of(configDir, dataDir, modelDir, outputDataDir, checkpointDir, codeDir)) {
      Files.createDirectories(p);
    }
  }

  // ------------------------------------------------------------------ channels

  private void linkChannels() throws IOException {
    for (Map.Entry<String, String> c : new TreeMap<>(spec.getChannelsMap()).entrySet()) {
      UserCode.link("channel", c.getKey(), c.getValue(), dataDir.resolve(c.getKey()), events);
    }
  }

  // ------------------------------------------------------------------ checkpoints

  private URI checkpointSource() {
    String from = spec.getCheckpoint().getResumeFrom().trim();
    if (from.isEmpty()) return folder(jobUri.resolve("checkpoints/"));
    Path p = UserCode.localPath(from, "checkpoint.resume_from");
    Path sub = p.resolve("checkpoints");
    return (Files.isDirectory(sub) ? sub : p).toUri();
  }

  private void restoreCheckpoints() throws IOException {
    URI from = checkpointSource();
    Path local = "file".equals(from.getScheme()) ? Path.of(from.getPath()) : null;
    if (local != null && !Files.isDirectory(local)) {
      if (!spec.getCheckpoint().getResumeFrom().isBlank()) {
        throw new IllegalArgumentException("checkpoint.resume_from: " + from + " is not a folder");
      }
      return;
    }
    ArtifactStore store = ArtifactStore.forRoot(from);
    List<URI> files = store.list(from);
    if (files.isEmpty()) return;
    Path root = Path.of(from.getPath());
    long bytes = 0;
    for (URI f : files) {
      Path rel = root.relativize(Path.of(f.getPath()));
      Path target = checkpointDir.resolve(rel.toString()).normalize();
      if (!target.startsWith(checkpointDir)) continue;
      Files.createDirectories(target.getParent());
      try (InputStream in = store.open(f)) {
        bytes += Files.copy(in, target);
      }
    }
    events.info(String.format(Locale.ROOT, "restored %d checkpoint files (%.1f kB) from %s into %s", files.size(),
        bytes / 1e3, from, checkpointDir));
  }

  // ------------------------------------------------------------------ distributed

  /** Rank 0 publishes a free port on its host; every rank learns rank 0's address from the group. */
  private Map<String, String> rendezvous() throws Exception {
    String host = options.host();
    String address;
    if (rank == 0) {
      int port = freePort(host);
      address = host + ":" + port;
    } else {
      address = host + ":0";
    }
    events.info("waiting for the other ranks (world size " + world + ")" + (rank == 0 ? "; master " + address : ""));
    GroupSpec group = ctx.rendezvous().join(TaskRendezvous.newBuilder().setRank(rank).setDataAddress(address)
        .setBackend("script").build(), options.rendezvousTimeout());
    if (group.getDataAddressesCount() < 1) throw new IllegalStateException("the group has no addresses");
    String master = group.getDataAddresses(0);
    int colon = master.lastIndexOf(':');
    if (colon <= 0) throw new IllegalStateException("rank 0's address '" + master + "' is not host:port");
    Map<String, String> env = new LinkedHashMap<>();
    env.put("MASTER_ADDR", master.substring(0, colon));
    env.put("MASTER_PORT", master.substring(colon + 1));
    env.put("WORLD_SIZE", String.valueOf(world));
    env.put("RANK", String.valueOf(rank));
    env.put("LOCAL_RANK", "0");
    env.put("LOCAL_WORLD_SIZE", "1");
    events.info("group formed: MASTER_ADDR=" + env.get("MASTER_ADDR") + " MASTER_PORT=" + env.get("MASTER_PORT")
        + " RANK=" + rank + " WORLD_SIZE=" + world);
    return env;
  }

  private static int freePort(String host) throws IOException {
    try (ServerSocket s = new ServerSocket()) {
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress(InetAddress.getByName(host), 0));
      return s.getLocalPort();
    }
  }

  // ------------------------------------------------------------------ results

  private void uploadResults() throws IOException {
    if (UserCode.isEmptyTree(modelDir)) {
      events.warn("the script wrote nothing to SM_MODEL_DIR (" + modelDir + "): the model folder stays empty");
    } else {
      ArtifactStore.forRoot(modelUri).upload(modelDir, modelUri);
      events.info("model/ uploaded to " + modelUri);
    }
    if (!UserCode.isEmptyTree(outputDataDir)) {
      URI to = folder(jobUri.resolve("output/"));
      ArtifactStore.forRoot(jobUri).upload(outputDataDir, to);
      events.info("output/data/ uploaded to " + to);
    }
  }
}

package io.kiln.worker.script;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
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
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Pattern;

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
  private static final Pattern JSON_NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();
  private static final Gson COMPACT = new GsonBuilder().disableHtmlEscaping().create();

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
      Map<String, String> env = writeConfigAndEnvironment(script, distributed);
      env.putAll(sandbox.environment(taskDir));
      sandbox.handOver(taskDir);
      events.info(sandbox.describe());
      List<String> user = new ArrayList<>(UserCode.interpreter(entry, codeDir, options.python(), events));
      user.addAll(arguments(script.hyperparameters()));
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

  // ------------------------------------------------------------------ contract

  private static String host(int rank) {
    return "algo-" + (rank + 1);
  }

  private Map<String, String> writeConfigAndEnvironment(ScriptSpec script, Map<String, String> distributed)
      throws IOException {
    SortedMap<String, String> hps = script.hyperparameters();
    List<String> hosts = new ArrayList<>();
    for (int r = 0; r < world; r++) hosts.add(host(r));
    String current = host(rank);

    Files.writeString(configDir.resolve("hyperparameters.json"), GSON.toJson(hps));
    JsonObject inputData = new JsonObject();
    SortedMap<String, String> channelDirs = new TreeMap<>();
    for (String ch : new TreeMap<>(spec.getChannelsMap()).keySet()) {
      JsonObject c = new JsonObject();
      c.addProperty("TrainingInputMode", "File");
      c.addProperty("S3DistributionType", "FullyReplicated");
      c.addProperty("RecordWrapperType", "None");
      inputData.add(ch, c);
      channelDirs.put(ch, dataDir.resolve(ch).toString());
    }
    Files.writeString(configDir.resolve("inputdataconfig.json"), GSON.toJson(inputData));
    JsonObject resource = new JsonObject();
    resource.addProperty("current_host", current);
    JsonArray hostArray = new JsonArray();
    hosts.forEach(hostArray::add);
    resource.add("hosts", hostArray);
    resource.addProperty("network_interface_name", "lo");
    Files.writeString(configDir.resolve("resourceconfig.json"), GSON.toJson(resource));

    int cpus = spec.getResources().getCpusPerWorker() > 0 ? spec.getResources().getCpusPerWorker()
        : Runtime.getRuntime().availableProcessors();
    int gpus = Math.max(0, spec.getResources().getGpusPerWorker());
    String hpsJson = decodedHyperparameters(hps);
    List<String> args = arguments(hps);
    String program = script.program();
    String moduleName = Path.of(program).getFileName().toString().replaceFirst("\\.(py|sh)$", "");
    String moduleDir = script.submitDirectory().isEmpty() ? codeDir.toUri().toString() : script.submitDirectory();

    Map<String, String> env = new LinkedHashMap<>();
    env.put("TRAINING_JOB_NAME", assignment.getJobId());
    env.put("SAGEMAKER_BASE_DIR", base.toString());
    env.put("SAGEMAKER_PROGRAM", program);
    env.put("SM_MODEL_DIR", modelDir.toString());
    env.put("SM_CHANNELS", COMPACT.toJson(new ArrayList<>(channelDirs.keySet())));
    channelDirs.forEach((ch, dir) -> env.put("SM_CHANNEL_" + envName(ch), dir));
    env.put("SM_HPS", hpsJson);
    hps.forEach((k, v) -> env.put("SM_HP_" + envName(k), v));
    env.put("SM_CURRENT_HOST", current);
    env.put("SM_HOSTS", COMPACT.toJson(hosts));
    env.put("SM_NUM_GPUS", String.valueOf(gpus));
    env.put("SM_NUM_CPUS", String.valueOf(cpus));
    env.put("SM_INPUT_DIR", base.resolve("input").toString());
    env.put("SM_INPUT_CONFIG_DIR", configDir.toString());
    env.put("SM_OUTPUT_DIR", outputDir.toString());
    env.put("SM_OUTPUT_DATA_DIR", outputDataDir.toString());
    env.put("SM_OUTPUT_INTERMEDIATE_DIR", outputDir.resolve("intermediate").toString());
    env.put("SM_RESOURCE_CONFIG", COMPACT.toJson(resource));
    env.put("SM_INPUT_DATA_CONFIG", COMPACT.toJson(inputData));
    env.put("SM_USER_ARGS", COMPACT.toJson(args));
    env.put("SM_LOG_LEVEL", "20");
    env.put("SM_NETWORK_INTERFACE_NAME", "lo");
    env.put("SM_USER_ENTRY_POINT", program);
    env.put("SM_MODULE_NAME", moduleName);
    env.put("SM_MODULE_DIR", moduleDir);
    env.put("SM_FRAMEWORK_PARAMS", "{}");

    JsonObject training = new JsonObject();
    training.add("additional_framework_parameters", new JsonObject());
    JsonObject channelInputDirs = new JsonObject();
    channelDirs.forEach(channelInputDirs::addProperty);
    training.add("channel_input_dirs", channelInputDirs);
    training.addProperty("current_host", current);
    training.add("hosts", hostArray);
    training.add("hyperparameters", JsonParser.parseString(hpsJson));
    training.addProperty("input_config_dir", configDir.toString());
    training.add("input_data_config", inputData);
    training.addProperty("input_dir", base.resolve("input").toString());
    training.addProperty("is_master", rank == 0);
    training.addProperty("job_name", assignment.getJobId());
    training.addProperty("log_level", 20);
    training.addProperty("master_hostname", host(0));
    training.addProperty("model_dir", modelDir.toString());
    training.addProperty("module_dir", moduleDir);
    training.addProperty("module_name", moduleName);
    training.addProperty("network_interface_name", "lo");
    training.addProperty("num_cpus", cpus);
    training.addProperty("num_gpus", gpus);
    training.addProperty("output_data_dir", outputDataDir.toString());
    training.addProperty("output_dir", outputDir.toString());
    training.addProperty("output_intermediate_dir", outputDir.resolve("intermediate").toString());
    training.add("resource_config", resource);
    training.addProperty("user_entry_point", program);
    env.put("SM_TRAINING_ENV", COMPACT.toJson(training));

    env.put("KILN_JOB_ID", assignment.getJobId());
    env.put("KILN_JOB_NAME", spec.getName());
    env.put("KILN_TASK_ID", assignment.getTaskId());
    env.put("KILN_CHECKPOINT_DIR", checkpointDir.toString());
    env.putAll(distributed);
    env.put("PYTHONUNBUFFERED", "1");
    env.put("OMP_NUM_THREADS", String.valueOf(Math.max(1, spec.getResources().getCpusPerWorker())));
    return env;
  }

  /** SageMaker's {@code SM_HP_<NAME>} / {@code SM_CHANNEL_<NAME>}: upper case, other characters as '_'. */
  static String envName(String name) {
    return name.toUpperCase(Locale.ROOT).replaceAll("[^A-Z0-9_]", "_");
  }

  /**
   * {@code SM_HPS} as the SageMaker training toolkit makes it: each value decoded as JSON where it
   * is a JSON number, boolean, null, list, object or quoted string, else kept as a string.
   */
  static String decodedHyperparameters(Map<String, String> hps) {
    StringBuilder sb = new StringBuilder("{");
    for (Map.Entry<String, String> e : hps.entrySet()) {
      if (sb.length() > 1) sb.append(',');
      sb.append(COMPACT.toJson(e.getKey())).append(':').append(jsonValue(e.getValue()));
    }
    return sb.append('}').toString();
  }

  private static String jsonValue(String v) {
    String t = v.trim();
    if (JSON_NUMBER.matcher(t).matches() || t.equals("true") || t.equals("false") || t.equals("null")) return t;
    if ((t.startsWith("[") && t.endsWith("]")) || (t.startsWith("{") && t.endsWith("}"))
        || (t.length() >= 2 && t.startsWith("\"") && t.endsWith("\""))) {
      try {
        return COMPACT.toJson(JsonParser.parseString(t));
      } catch (RuntimeException ignored) {
        // not JSON: a string
      }
    }
    return COMPACT.toJson(v);
  }

  /** Hyperparameters as {@code --name value} arguments, sorted by name. */
  static List<String> arguments(Map<String, String> hps) {
    List<String> args = new ArrayList<>();
    new TreeMap<>(hps).forEach((k, v) -> {
      args.add("--" + k);
      args.add(v);
    });
    return args;
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

package io.kiln.worker.script;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.task.TaskRunner;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * One run of a script task, start to finish, on the calling thread:
 *
 * <ol>
 *   <li>read the script settings ({@link ScriptSpec}); lay out the base directory
 *       {@code <data-dir>/jobs/<task-id>/ml} (mode 700, emptied first);
 *   <li>unpack the source into {@code code/} and check the entry point;
 *   <li>link the channels into {@code input/data/<channel>/}; copy {@code <job>/checkpoints/} (or
 *       {@code spec.checkpoint.resume_from}) into {@code checkpoints/};
 *   <li>distributed jobs: rendezvous (rank 0 publishes {@code host:port} for {@code MASTER_ADDR});
 *   <li>write {@code input/config/*.json}, build the environment, start the script in its own
 *       process group (optionally under {@code prlimit --as}), stream its output into the job's log,
 *       extract metrics, enforce {@code max_runtime_seconds} and stop requests;
 *   <li>exit 0: upload {@code model/} (rank 0) and {@code output/data/}; otherwise fail with
 *       {@code output/failure} or the exit code and the last log lines;
 *   <li>always (rank 0): upload {@code checkpoints/}; on success the base directory is deleted.
 * </ol>
 */
final class ScriptExecution {
  static final int FAILURE_CHARS = 1024;
  static final int TAIL_LINES = 20;
  private static final int MAX_LINE_CHARS = 8192;
  private static final long METRICS_REPORT_INTERVAL_NANOS = 500_000_000L;
  private static final long LOG_FLUSH_INTERVAL_NANOS = 1_000_000_000L;
  private static final Pattern CHANNEL_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
  private static final Pattern JSON_NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
  private static final Path PRLIMIT = firstExisting("/usr/bin/prlimit", "/bin/prlimit");
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();
  private static final Gson COMPACT = new GsonBuilder().disableHtmlEscaping().create();
  private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

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

  /** The last lines of stdout and of stderr (each stream is read by its own thread, so their order is lost). */
  private final Deque<String> stdoutTail = new ArrayDeque<>();
  private final Deque<String> stderrTail = new ArrayDeque<>();
  private final Map<String, Double> metrics = new LinkedHashMap<>();
  private boolean metricsChanged;
  private List<MetricDefinition> metricDefinitions = List.of();

  // the layout
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
    metricDefinitions = script.metrics();
    layOut();
    boolean succeeded = false;
    try {
      Path entry = installSource(script);
      linkChannels();
      restoreCheckpoints();
      ctx.stop().check();
      Map<String, String> distributed = world > 1 ? rendezvous() : Map.of();
      ctx.stop().check();
      Map<String, String> env = writeConfigAndEnvironment(script, distributed);
      List<String> command = command(script, entry);
      long t0 = System.nanoTime();
      int exit = execute(command, env);
      double seconds = (System.nanoTime() - t0) / 1e9;
      if (exit != 0) throw new ScriptFailedException(failureReason(exit));
      events.info(String.format(Locale.ROOT, "the script exited with code 0 after %.1f s", seconds));
      if (rank == 0) uploadResults();
      else warnIfNotEmpty(modelDir, "model/ of rank " + rank + " is not uploaded (only rank 0's is)");
      Map<String, Double> out = new LinkedHashMap<>(lastMetrics());
      out.putIfAbsent("train_seconds", seconds);
      succeeded = true;
      return new TaskRunner.Outcome(modelUri.toString(), out);
    } finally {
      if (rank == 0) uploadCheckpoints();
      if (succeeded) {
        deleteTree(base.getParent());
      } else {
        events.info("the task's directory is kept for inspection: " + base);
      }
    }
  }

  // ------------------------------------------------------------------ layout

  private void layOut() throws IOException {
    Path jobs = options.dataDir().resolve("jobs");
    Path taskDir = jobs.resolve(safeFileName(assignment.getTaskId().isBlank() ? assignment.getJobId()
        : assignment.getTaskId()));
    if (Files.exists(taskDir)) deleteTree(taskDir); // a previous attempt of the same task
    Files.createDirectories(taskDir);
    ownerOnly(taskDir);
    base = taskDir.resolve("ml");
    Files.createDirectories(base);
    ownerOnly(base);
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

  private static String safeFileName(String id) {
    String s = id.replaceAll("[^A-Za-z0-9._-]", "_");
    if (s.isEmpty() || s.equals(".") || s.equals("..")) s = "task";
    return s;
  }

  private static void ownerOnly(Path p) {
    try {
      Files.setPosixFilePermissions(p, OWNER_ONLY);
    } catch (IOException | UnsupportedOperationException ignored) {
      // not a POSIX file system: nothing to restrict
    }
  }

  // ------------------------------------------------------------------ source

  private Path installSource(ScriptSpec script) throws IOException {
    String program = script.program();
    String submit = script.submitDirectory();
    if (submit.isEmpty()) {
      Path p = Path.of(program);
      if (!p.isAbsolute()) {
        throw new IllegalArgumentException("entry point '" + program + "' is relative but the job has no source "
            + "directory (hyperparameters." + ScriptSpec.SUBMIT_DIRECTORY + "; kiln train --source-dir DIR)");
      }
      if (!Files.isRegularFile(p)) {
        throw new IllegalArgumentException("entry point " + program + " does not exist on this worker");
      }
      Path copy = codeDir.resolve(p.getFileName().toString());
      Files.copy(p, copy);
      if (Files.isExecutable(p)) copy.toFile().setExecutable(true, true);
      events.info("entry point " + program + " copied into " + codeDir);
      return copy;
    }
    Path source = localPath(submit, "hyperparameters." + ScriptSpec.SUBMIT_DIRECTORY);
    if (Files.isDirectory(source)) {
      copyTree(source, codeDir);
      events.info("source directory " + source + " copied into " + codeDir);
    } else if (Files.isRegularFile(source)) {
      SourceArchive.Result r = SourceArchive.extract(source, codeDir);
      events.info(String.format(Locale.ROOT, "source %s unpacked into %s: %d files, %.1f kB", submit, codeDir,
          r.files(), r.bytes() / 1e3));
      if (!r.skipped().isEmpty()) events.warn("skipped in the source archive: " + String.join(", ", r.skipped()));
    } else {
      throw new IllegalArgumentException("source " + submit + " does not exist on this worker (with a remote "
          + "cluster, the CLI's source upload is not built yet: see docs/script-mode.md)");
    }
    Path entry = codeDir.resolve(program).normalize();
    if (Path.of(program).isAbsolute() || !entry.startsWith(codeDir)) {
      throw new IllegalArgumentException("entry point '" + program + "' must be a path inside the source directory");
    }
    if (!Files.isRegularFile(entry)) {
      throw new IllegalArgumentException("entry point '" + program + "' not found in the source " + submit
          + " (it has: " + listing(codeDir) + ")");
    }
    return entry;
  }

  private static String listing(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      List<String> names = s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString()).sorted().limit(21)
          .toList();
      if (names.isEmpty()) return "no files";
      if (names.size() > 20) return String.join(", ", names.subList(0, 20)) + ", ...";
      return String.join(", ", names);
    }
  }

  // ------------------------------------------------------------------ channels

  private void linkChannels() throws IOException {
    for (Map.Entry<String, String> c : new TreeMap<>(spec.getChannelsMap()).entrySet()) {
      String name = c.getKey();
      if (!CHANNEL_NAME.matcher(name).matches()) {
        throw new IllegalArgumentException("channel name '" + name + "' must be letters, digits, '.', '_' or '-'");
      }
      Path src = localPath(c.getValue(), "channels." + name);
      if (!Files.exists(src)) {
        throw new IllegalArgumentException("channel '" + name + "': " + src + " does not exist on this worker");
      }
      Path dst = dataDir.resolve(name);
      Files.createDirectories(dst);
      int n = 0;
      if (Files.isDirectory(src)) {
        try (Stream<Path> entries = Files.list(src)) {
          for (Path e : (Iterable<Path>) entries.sorted()::iterator) {
            Files.createSymbolicLink(dst.resolve(e.getFileName().toString()), e.toAbsolutePath());
            n++;
          }
        }
      } else {
        Files.createSymbolicLink(dst.resolve(src.getFileName().toString()), src.toAbsolutePath());
        n = 1;
      }
      events.info("channel " + name + ": " + n + " entries of " + src + " linked into " + dst);
    }
  }

  /** An absolute path or {@code file:} URI as a local path. */
  private static Path localPath(String value, String field) {
    String v = value.trim();
    if (v.startsWith("/")) return Path.of(v);
    URI u;
    try {
      u = URI.create(v);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(field + ": '" + value + "' is not a path or URI");
    }
    if ("file".equals(u.getScheme()) && u.getPath() != null) return Path.of(u.getPath());
    throw new IllegalArgumentException(field + ": '" + value + "' must be an absolute path or a file: URI");
  }

  // ------------------------------------------------------------------ checkpoints

  private URI checkpointSource() {
    String from = spec.getCheckpoint().getResumeFrom().trim();
    if (from.isEmpty()) return folder(jobUri.resolve("checkpoints/"));
    Path p = localPath(from, "checkpoint.resume_from");
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

  private void uploadCheckpoints() {
    try {
      if (checkpointDir == null || isEmptyTree(checkpointDir)) return;
      URI to = folder(jobUri.resolve("checkpoints/"));
      ArtifactStore.forRoot(jobUri).upload(checkpointDir, to);
      events.info("checkpoints/ uploaded to " + to);
    } catch (Exception e) {
      events.warn("cannot upload checkpoints/: " + e);
    }
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

  // ------------------------------------------------------------------ the process

  private List<String> command(ScriptSpec script, Path entry) {
    List<String> cmd = new ArrayList<>(ProcessTree.groupPrefix());
    long memoryMb = spec.getResources().getMemoryMbPerWorker();
    if (memoryMb > 0) {
      if (PRLIMIT != null) {
        cmd.addAll(List.of(PRLIMIT.toString(), "--as=" + memoryMb * 1024 * 1024, "--"));
        events.info("memory limit: " + memoryMb + " MB of virtual address space (prlimit --as)");
      } else {
        events.warn("memory limit of " + memoryMb + " MB not enforced: prlimit is not installed on this worker");
      }
    }
    String rel = codeDir.relativize(entry).toString();
    String name = entry.getFileName().toString();
    if (name.endsWith(".py")) {
      cmd.add(options.python());
      cmd.add(rel);
    } else if (name.endsWith(".sh")) {
      cmd.add("/bin/bash");
      cmd.add(rel);
    } else {
      if (!Files.isExecutable(entry)) {
        entry.toFile().setExecutable(true, true);
        events.info("made the entry point " + rel + " executable");
      }
      cmd.add("./" + rel);
    }
    cmd.addAll(arguments(script.hyperparameters()));
    return cmd;
  }

  /** Runs the script to its end; returns its exit code (throws on a stop request or max runtime). */
  private int execute(List<String> command, Map<String, String> env) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(command).directory(codeDir.toFile())
        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    Map<String, String> pe = pb.environment();
    pe.keySet().removeIf(k -> k.startsWith("SM_") || k.startsWith("SAGEMAKER_") || k.startsWith("KILN_")
        || Set.of("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
            "TRAINING_JOB_NAME").contains(k));
    pe.putAll(env);
    long maxRuntime = spec.getStopping().getMaxRuntimeSeconds();
    events.info("running " + String.join(" ", command) + " in " + codeDir
        + (maxRuntime > 0 ? " (max runtime " + maxRuntime + " s)" : ""));
    ProcessTree tree = ProcessTree.start(pb);
    Process p = tree.process();
    Thread out = pump(p.getInputStream(), "INFO", "out");
    Thread err = pump(p.getErrorStream(), "WARN", "err");
    long start = System.nanoTime();
    long deadline = maxRuntime > 0 ? start + TimeUnit.SECONDS.toNanos(maxRuntime) : Long.MAX_VALUE;
    long lastMetrics = start;
    long lastFlush = start;
    String killedFor = null;
    boolean stopped = false;
    try {
      while (!p.waitFor(100, TimeUnit.MILLISECONDS)) {
        long now = System.nanoTime();
        if (ctx.stop().isStopped()) {
          killedFor = "stop requested (" + ctx.stop().reason() + ")";
          stopped = true;
          break;
        }
        if (now > deadline) {
          killedFor = "max runtime of " + maxRuntime + " s exceeded (stopping.max_runtime_seconds)";
          break;
        }
        if (now - lastMetrics >= METRICS_REPORT_INTERVAL_NANOS) {
          reportMetrics();
          lastMetrics = now;
        }
        if (now - lastFlush >= LOG_FLUSH_INTERVAL_NANOS) {
          events.flushLogs();
          lastFlush = now;
        }
      }
    } finally {
      if (killedFor != null) {
        events.warn(killedFor + ": sending SIGTERM to the script's processes (SIGKILL after "
            + options.killGrace().toSeconds() + " s)");
      }
      boolean forced = tree.terminate(killedFor != null ? options.killGrace() : Duration.ofSeconds(2));
      if (forced && killedFor != null) events.warn("processes still running after the grace period were killed (SIGKILL)");
      out.join(5000);
      err.join(5000);
      reportMetrics();
    }
    if (stopped) {
      ctx.stop().check();
    }
    if (killedFor != null) {
      throw new ScriptFailedException(killedFor + ": the script and its child processes were stopped");
    }
    return p.exitValue();
  }

  private Thread pump(InputStream in, String level, String which) {
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
        String line;
        while ((line = r.readLine()) != null) onLine(level, line);
      } catch (IOException e) {
        // the stream closed under us (the process was killed)
      }
    }, "kiln-script-" + assignment.getTaskId() + "-" + which);
    t.setDaemon(true);
    t.start();
    return t;
  }

  private void onLine(String level, String raw) {
    String line = raw.length() > MAX_LINE_CHARS ? raw.substring(0, MAX_LINE_CHARS) + " ...(truncated)" : raw;
    Deque<String> tail = "WARN".equals(level) ? stderrTail : stdoutTail;
    synchronized (tail) {
      tail.addLast(line);
      while (tail.size() > TAIL_LINES) tail.removeFirst();
    }
    events.log(level, line);
    if (metricDefinitions.isEmpty()) return;
    for (MetricDefinition d : metricDefinitions) {
      OptionalDouble v = d.find(raw);
      if (v.isPresent()) {
        synchronized (metrics) {
          metrics.put(d.name(), v.getAsDouble());
          metricsChanged = true;
        }
      }
    }
  }

  private Map<String, Double> lastMetrics() {
    synchronized (metrics) {
      return new LinkedHashMap<>(metrics);
    }
  }

  /** Sends the latest value of every metric as a progress report, if one changed since the last. */
  private void reportMetrics() {
    Map<String, Double> m;
    synchronized (metrics) {
      if (!metricsChanged) return;
      metricsChanged = false;
      m = new LinkedHashMap<>(metrics);
    }
    Progress.Builder p = Progress.newBuilder().putAllMetrics(m).setTimestampMs(System.currentTimeMillis());
    if (m.containsKey("step")) p.setStep(m.get("step").longValue());
    if (m.containsKey("total_steps")) p.setTotalSteps(m.get("total_steps").longValue());
    if (m.containsKey("epoch")) p.setEpoch(m.get("epoch").intValue());
    if (m.containsKey("total_epochs")) p.setTotalEpochs(m.get("total_epochs").intValue());
    if (m.containsKey("loss")) p.setLoss(m.get("loss"));
    else if (m.containsKey("train_loss")) p.setLoss(m.get("train_loss"));
    if (m.containsKey("samples_per_sec")) p.setSamplesPerSec(m.get("samples_per_sec"));
    events.progress(p.build());
  }

  private String failureReason(int exit) throws IOException {
    Path failure = outputDir.resolve("failure");
    if (Files.isRegularFile(failure)) {
      String text = new String(Files.readAllBytes(failure), StandardCharsets.UTF_8).strip();
      if (!text.isEmpty()) {
        return text.length() > FAILURE_CHARS ? text.substring(0, FAILURE_CHARS) : text;
      }
    }
    StringBuilder sb = new StringBuilder("exit code ").append(exit);
    if (exit > 128 && exit <= 128 + 64) {
      int sig = exit - 128;
      sb.append(" (killed by signal ").append(sig).append(sig == 9 ? ": SIGKILL, e.g. out of memory" : "").append(')');
    }
    // stderr holds what explains a failure (tracebacks, shell errors, logging); stdout when stderr is empty
    List<String> last;
    String stream = "stderr";
    synchronized (stderrTail) {
      last = new ArrayList<>(stderrTail);
    }
    if (last.isEmpty()) {
      stream = "stdout";
      synchronized (stdoutTail) {
        last = new ArrayList<>(stdoutTail);
      }
    }
    if (last.isEmpty()) sb.append("; the script printed nothing");
    else sb.append("; last ").append(last.size()).append(" lines of ").append(stream).append(":\n")
        .append(String.join("\n", last));
    return sb.toString();
  }

  // ------------------------------------------------------------------ results

  private void uploadResults() throws IOException {
    if (isEmptyTree(modelDir)) {
      events.warn("the script wrote nothing to SM_MODEL_DIR (" + modelDir + "): the model folder stays empty");
    } else {
      ArtifactStore.forRoot(modelUri).upload(modelDir, modelUri);
      events.info("model/ uploaded to " + modelUri);
    }
    if (!isEmptyTree(outputDataDir)) {
      URI to = folder(jobUri.resolve("output/"));
      ArtifactStore.forRoot(jobUri).upload(outputDataDir, to);
      events.info("output/data/ uploaded to " + to);
    }
  }

  private void warnIfNotEmpty(Path dir, String message) throws IOException {
    if (!isEmptyTree(dir)) events.info(message);
  }

  private static boolean isEmptyTree(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) return true;
    try (Stream<Path> s = Files.walk(dir)) {
      return s.noneMatch(Files::isRegularFile);
    }
  }

  // ------------------------------------------------------------------ files

  private static void copyTree(Path from, Path to) throws IOException {
    Files.walkFileTree(from, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
        if (dir.getFileName() != null && dir.getFileName().toString().equals(".git") && !dir.equals(from)) {
          return FileVisitResult.SKIP_SUBTREE;
        }
        Files.createDirectories(to.resolve(from.relativize(dir).toString()));
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
        if (attrs.isRegularFile()) {
          Path t = to.resolve(from.relativize(file).toString());
          Files.copy(file, t);
          if (Files.isExecutable(file)) t.toFile().setExecutable(true, true);
        }
        return FileVisitResult.CONTINUE;
      }
    });
  }

  static void deleteTree(Path root) {
    if (root == null || !Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
    try {
      Files.walkFileTree(root, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
          Files.deleteIfExists(file); // symbolic links (channels) are removed, never followed
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
          Files.deleteIfExists(dir);
          return FileVisitResult.CONTINUE;
        }
      });
    } catch (IOException ignored) {
      // best effort
    }
  }

  private static Path firstExisting(String... candidates) {
    for (String c : candidates) {
      Path p = Path.of(c);
      if (Files.isExecutable(p)) return p;
    }
    return null;
  }
}

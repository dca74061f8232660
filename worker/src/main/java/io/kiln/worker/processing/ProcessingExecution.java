package io.kiln.worker.processing;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.sandbox.Sandbox;
import io.kiln.worker.sandbox.TaskLimits;
import io.kiln.worker.script.OutputLimit;
import io.kiln.worker.script.ScriptFailedException;
import io.kiln.worker.script.ScriptProcess;
import io.kiln.worker.script.ScriptRunner;
import io.kiln.worker.script.UserCode;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.training.ModelArtifacts;
import java.io.IOException;
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
 * One processing job (docs/processing.md) on the calling thread, under SageMaker Processing's
 * layout inside {@code <data-dir>/jobs/<task-id>/ml} (SageMaker's {@code /opt/ml}):
 * {@code processing/input/<name>/} (links to each input), {@code processing/output/<name>/} (uploaded
 * to its destination when the code exits 0), {@code config/processingjobconfig.json} and
 * {@code config/resourceconfig.json}, {@code code/}. The process runs in the same sandbox, with the
 * same limits, logs and failure reasons as a script ({@link ScriptProcess}).
 */
final class ProcessingExecution {
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

  private final TaskRunner.Context ctx;
  private final ScriptRunner.Options options;
  private final TaskAssignment assignment;
  private final JobSpec spec;
  private final TaskEvents events;
  private final URI jobUri;

  ProcessingExecution(TaskRunner.Context ctx, ScriptRunner.Options options) {
    this.ctx = ctx;
    this.options = options;
    this.assignment = ctx.assignment();
    this.spec = assignment.getSpec();
    this.events = ctx.events();
    this.jobUri = ModelArtifacts.folder(ctx.jobUri());
  }

  /** Where output {@code name} goes: its destination, else {@code <job folder>/output/<name>/}. */
  static URI destination(URI jobUri, String name, String value) {
    if (value.isEmpty()) return ModelArtifacts.folder(jobUri.resolve("output/" + name + "/"));
    return ModelArtifacts.folder(UserCode.localPath(value, "outputs." + name).toUri());
  }

  TaskRunner.Outcome run() throws Exception {
    ProcessingSpec p = ProcessingSpec.fromSpec(spec);
    if (Math.max(assignment.getWorldSize(), spec.getResources().getWorkers()) > 1) {
      throw new IllegalArgumentException("processing jobs run on one worker (resources.workers: 1)");
    }
    Path taskDir = UserCode.taskDirectory(options.dataDir(), assignment.getTaskId().isBlank() ? assignment.getJobId()
        : assignment.getTaskId());
    Path base = taskDir.resolve("ml");
    Path inputs = base.resolve("processing/input");
    Path outputs = base.resolve("processing/output");
    Path config = base.resolve("config");
    Path code = base.resolve("code");
    Path failure = base.resolve("output/failure");
    for (Path d : List.of(inputs, outputs, config, code, failure.getParent())) Files.createDirectories(d);
    UserCode.ownerOnly(base);
    Map<String, Path> outDirs = new TreeMap<>();
    for (String name : p.outputs().keySet()) outDirs.put(name, Files.createDirectories(outputs.resolve(name)));

    ScriptProcess process = new ScriptProcess(events, ctx.stop(), assignment.getTaskId(), p.script().metrics());
    long maxOutput = p.script().maxOutputMb() > 0 ? p.script().maxOutputMb() << 20 : options.maxOutputBytes();
    long maxLog = p.script().maxLogMb() > 0 ? p.script().maxLogMb() << 20 : options.maxLogBytes();
    TaskLimits limits = new TaskLimits(Math.max(0, spec.getResources().getMemoryMbPerWorker()) << 20,
        Math.max(0, spec.getResources().getCpusPerWorker()), options.maxPids(), maxOutput);
    boolean succeeded = false;
    Sandbox sandbox = null;
    try {
      sandbox = Sandbox.open(options.sandbox(), taskDir.getFileName().toString(), limits, events::warn);
      Path entry = UserCode.installSource(p.script().program(), p.script().submitDirectory(), code, events);
      Map<String, Path> inDirs = new TreeMap<>();
      for (Map.Entry<String, String> in : new TreeMap<>(spec.getChannelsMap()).entrySet()) {
        Path dst = inputs.resolve(in.getKey());
        UserCode.link("input", in.getKey(), in.getValue(), dst, events);
        inDirs.put(in.getKey(), dst);
      }
      ctx.stop().check();
      List<String> user = new ArrayList<>(UserCode.interpreter(entry, code, options.python(), events));
      user.addAll(p.arguments());
      writeConfig(config, p, inDirs, outDirs, user);
      Map<String, String> env = environment(p, base, inDirs, outDirs);
      env.putAll(sandbox.environment(taskDir));
      sandbox.handOver(taskDir);
      events.info(sandbox.describe());
      long maxRuntime = spec.getStopping().getMaxRuntimeSeconds();
      events.info("running " + String.join(" ", user) + " in " + code + (maxRuntime > 0 ? " (max runtime " + maxRuntime
          + " s)" : ""));
      List<String> command = new ArrayList<>(sandbox.prefix());
      command.addAll(user);
      OutputLimit outputLimit = new OutputLimit(List.of(outputs), maxOutput, "processing/output/");
      long t0 = System.nanoTime();
      int exit = process.run(command, code, env, new ScriptProcess.Limits(maxRuntime, maxLog, options.killGrace()),
          List.of(new ScriptProcess.Periodic(Duration.ofSeconds(2), outputLimit)));
      double seconds = (System.nanoTime() - t0) / 1e9;
      if (exit != 0) throw new ScriptFailedException(process.failureReason(exit, failure, sandbox.explain(exit)));
      String tooLarge = outputLimit.get();
      if (tooLarge != null) throw new ScriptFailedException(tooLarge);
      events.info(String.format(Locale.ROOT, "the processing code exited with code 0 after %.1f s", seconds));
      Map<String, Double> metrics = new LinkedHashMap<>(process.lastMetrics());
      metrics.putAll(upload(p, outDirs));
      metrics.putIfAbsent("processing_seconds", seconds);
      succeeded = true;
      return new TaskRunner.Outcome(ModelArtifacts.folder(jobUri.resolve("output/")).toString(), metrics);
    } finally {
      if (sandbox != null) sandbox.close();
      if (succeeded) UserCode.deleteTree(taskDir);
      else events.info("the task's directory is kept for inspection: " + base);
    }
  }

  /** Uploads every output folder to its destination; returns the file and byte counts. */
  private Map<String, Double> upload(ProcessingSpec p, Map<String, Path> outDirs) throws IOException {
    long files = 0;
    long bytes = 0;
    for (Map.Entry<String, Path> o : outDirs.entrySet()) {
      URI to = destination(jobUri, o.getKey(), p.outputs().get(o.getKey()));
      long n;
      long b = OutputLimit.size(List.of(o.getValue()));
      try (var s = Files.walk(o.getValue())) {
        n = s.filter(Files::isRegularFile).count();
      }
      if (n == 0) {
        events.warn("output " + o.getKey() + " is empty: nothing uploaded to " + to);
        continue;
      }
      ArtifactStore.forRoot(to).upload(o.getValue(), to);
      events.info(String.format(Locale.ROOT, "output %s: %d files, %.1f kB uploaded to %s", o.getKey(), n, b / 1e3, to));
      files += n;
      bytes += b;
    }
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("output_files", (double) files);
    m.put("output_bytes", (double) bytes);
    return m;
  }

  private Map<String, String> environment(ProcessingSpec p, Path base, Map<String, Path> in, Map<String, Path> out) {
    Map<String, String> env = new LinkedHashMap<>(p.script().hyperparameters()); // SageMaker's Environment
    env.put("KILN_PROCESSING_DIR", base.resolve("processing").toString());
    in.forEach((n, d) -> env.put("KILN_INPUT_" + envName(n), d.toString()));
    out.forEach((n, d) -> env.put("KILN_OUTPUT_" + envName(n), d.toString()));
    env.put("KILN_JOB_ID", assignment.getJobId());
    env.put("KILN_JOB_NAME", spec.getName());
    env.put("KILN_TASK_ID", assignment.getTaskId());
    env.put("PYTHONUNBUFFERED", "1");
    env.put("OMP_NUM_THREADS", String.valueOf(Math.max(1, spec.getResources().getCpusPerWorker())));
    return env;
  }

  static String envName(String name) {
    return name.toUpperCase(Locale.ROOT).replaceAll("[^A-Z0-9_]", "_");
  }

  /** SageMaker Processing's {@code /opt/ml/config/processingjobconfig.json} and {@code resourceconfig.json}. */
  private void writeConfig(Path config, ProcessingSpec p, Map<String, Path> in, Map<String, Path> out, List<String> cmd)
      throws IOException {
    JsonObject job = new JsonObject();
    job.addProperty("ProcessingJobName", assignment.getJobId());
    JsonArray inputs = new JsonArray();
    in.forEach((n, d) -> {
      JsonObject i = new JsonObject();
      i.addProperty("InputName", n);
      JsonObject s3 = new JsonObject();
      s3.addProperty("LocalPath", d.toString());
      s3.addProperty("S3Uri", spec.getChannelsMap().get(n));
      s3.addProperty("S3DataType", "S3Prefix");
      s3.addProperty("S3InputMode", "File");
      i.add("S3Input", s3);
      inputs.add(i);
    });
    job.add("ProcessingInputs", inputs);
    JsonArray outputs = new JsonArray();
    out.forEach((n, d) -> {
      JsonObject o = new JsonObject();
      o.addProperty("OutputName", n);
      JsonObject s3 = new JsonObject();
      s3.addProperty("LocalPath", d.toString());
      s3.addProperty("S3Uri", destination(jobUri, n, p.outputs().get(n)).toString());
      s3.addProperty("S3UploadMode", "EndOfJob");
      o.add("S3Output", s3);
      outputs.add(o);
    });
    JsonObject outputConfig = new JsonObject();
    outputConfig.add("Outputs", outputs);
    job.add("ProcessingOutputConfig", outputConfig);
    JsonObject cluster = new JsonObject();
    cluster.addProperty("InstanceCount", 1);
    cluster.addProperty("VolumeSizeInGB", 0);
    JsonObject resources = new JsonObject();
    resources.add("ClusterConfig", cluster);
    job.add("ProcessingResources", resources);
    JsonObject app = new JsonObject();
    JsonArray entry = new JsonArray();
    cmd.subList(0, cmd.size() - p.arguments().size()).forEach(entry::add);
    JsonArray args = new JsonArray();
    p.arguments().forEach(args::add);
    app.add("ContainerEntrypoint", entry);
    app.add("ContainerArguments", args);
    job.add("AppSpecification", app);
    JsonObject env = new JsonObject();
    p.script().hyperparameters().forEach(env::addProperty);
    job.add("Environment", env);
    Files.writeString(config.resolve("processingjobconfig.json"), GSON.toJson(job));
    JsonObject rc = new JsonObject();
    rc.addProperty("current_host", "algo-1");
    JsonArray hosts = new JsonArray();
    hosts.add("algo-1");
    rc.add("hosts", hosts);
    Files.writeString(config.resolve("resourceconfig.json"), GSON.toJson(rc));
  }
}

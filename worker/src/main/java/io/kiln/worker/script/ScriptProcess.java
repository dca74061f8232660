package io.kiln.worker.script;

import io.kiln.protocol.proto.Progress;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.StopSignal;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Runs one user process to its end on the calling thread: streams stdout (INFO) and stderr (WARN)
 * into the job's log, extracts metrics, and ends the process tree on a stop request, at the maximum
 * run time, when the log volume passes its limit, or when a periodic check (output size) says so.
 * Shared by script mode and processing jobs.
 */
public final class ScriptProcess {
  static final int FAILURE_CHARS = 1024;
  static final int TAIL_LINES = 20;
  private static final int MAX_LINE_CHARS = 8192;
  private static final long METRICS_REPORT_INTERVAL_NANOS = 500_000_000L;
  private static final long LOG_FLUSH_INTERVAL_NANOS = 1_000_000_000L;
  /** Variables of the worker that never reach user code (the API token is a KILN_ one). */
  private static final Set<String> DROPPED = Set.of("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK",
      "LOCAL_WORLD_SIZE", "TRAINING_JOB_NAME");

  /** Work done every {@code interval} while the process runs; a non-null answer ends it with that reason. */
  public record Periodic(Duration interval, Supplier<String> check) {}

  /** When the process is ended by Kiln: the limits other than the periodic checks. */
  public record Limits(long maxRuntimeSeconds, long maxLogBytes, Duration killGrace) {}

  private final TaskEvents events;
  private final StopSignal stop;
  private final String name;
  private final List<MetricDefinition> metricDefinitions;

  private final Deque<String> stdoutTail = new ArrayDeque<>();
  private final Deque<String> stderrTail = new ArrayDeque<>();
  private final Map<String, Double> metrics = new LinkedHashMap<>();
  private final AtomicLong logBytes = new AtomicLong();
  private boolean metricsChanged;

  public ScriptProcess(TaskEvents events, StopSignal stop, String name, List<MetricDefinition> metricDefinitions) {
    this.events = events;
    this.stop = stop;
    this.name = name;
    this.metricDefinitions = List.copyOf(metricDefinitions);
  }

  /**
   * Runs {@code command} in {@code workDir} with the worker's environment minus Kiln's, SageMaker's and
   * torchrun's variables, plus {@code env}; stdin is /dev/null. Returns the exit code; throws
   * {@link ScriptFailedException} when Kiln ended it (limit), a stop exception on a stop request.
   */
  public int run(List<String> command, Path workDir, Map<String, String> env, Limits limits, List<Periodic> periodic)
      throws Exception {
    ProcessBuilder pb = new ProcessBuilder(command).directory(workDir.toFile())
        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    Map<String, String> pe = pb.environment();
    pe.keySet().removeIf(k -> k.startsWith("SM_") || k.startsWith("SAGEMAKER_") || k.startsWith("KILN_")
        || DROPPED.contains(k));
    pe.putAll(env);
    ProcessTree tree = ProcessTree.start(pb);
    Process p = tree.process();
    Thread out = pump(p.getInputStream(), "INFO", "out");
    Thread err = pump(p.getErrorStream(), "WARN", "err");
    long start = System.nanoTime();
    long deadline = limits.maxRuntimeSeconds() > 0 ? start + TimeUnit.SECONDS.toNanos(limits.maxRuntimeSeconds())
        : Long.MAX_VALUE;
    long[] lastRun = new long[periodic.size()];
    java.util.Arrays.fill(lastRun, start);
    long lastMetrics = start;
    long lastFlush = start;
    String killedFor = null;
    boolean stopped = false;
    try {
      while (!p.waitFor(100, TimeUnit.MILLISECONDS)) {
        long now = System.nanoTime();
        if (stop.isStopped()) {
          killedFor = "stop requested (" + stop.reason() + ")";
          stopped = true;
          break;
        }
        if (now > deadline) {
          killedFor = "max runtime of " + limits.maxRuntimeSeconds() + " s exceeded (stopping.maxRuntimeSeconds)";
          break;
        }
        if (limits.maxLogBytes() > 0 && logBytes.get() > limits.maxLogBytes()) {
          killedFor = String.format(java.util.Locale.ROOT, "output too large: the script wrote more than %d MB of "
              + "log (kiln_max_log_mb / kiln.worker.script.max-log)", limits.maxLogBytes() >> 20);
          break;
        }
        for (int i = 0; i < periodic.size() && killedFor == null; i++) {
          if (now - lastRun[i] < periodic.get(i).interval().toNanos()) continue;
          lastRun[i] = now;
          killedFor = periodic.get(i).check().get();
        }
        if (killedFor != null) break;
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
            + limits.killGrace().toSeconds() + " s)");
      }
      boolean forced = tree.terminate(killedFor != null ? limits.killGrace() : Duration.ofSeconds(2));
      if (forced && killedFor != null) events.warn("processes still running after the grace period were killed (SIGKILL)");
      out.join(5000);
      err.join(5000);
      reportMetrics();
    }
    if (stopped) stop.check();
    if (killedFor != null) throw new ScriptFailedException(killedFor + ": the script and its child processes were stopped");
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
    }, "kiln-script-" + name + "-" + which);
    t.setDaemon(true);
    t.start();
    return t;
  }

  private void onLine(String level, String raw) {
    logBytes.addAndGet(raw.length() + 1L);
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

  /** The latest value of every metric. */
  public Map<String, Double> lastMetrics() {
    synchronized (metrics) {
      return new LinkedHashMap<>(metrics);
    }
  }

  /** The latest value of a metric, if the script printed it. */
  public OptionalDouble metric(String name) {
    synchronized (metrics) {
      Double v = metrics.get(name);
      return v == null ? OptionalDouble.empty() : OptionalDouble.of(v);
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

  /**
   * Why a non-zero exit failed the task: the first 1024 characters of {@code failureFile} if the
   * script wrote it, else {@code hint} (what the sandbox knows, e.g. out of memory) or the exit code,
   * with the last lines of stderr (of stdout when stderr is empty).
   */
  public String failureReason(int exit, Path failureFile, String hint) throws IOException {
    if (failureFile != null && Files.isRegularFile(failureFile)) {
      String text = new String(Files.readAllBytes(failureFile), StandardCharsets.UTF_8).strip();
      if (!text.isEmpty()) return text.length() > FAILURE_CHARS ? text.substring(0, FAILURE_CHARS) : text;
    }
    StringBuilder sb = new StringBuilder();
    if (hint != null) {
      sb.append(hint);
    } else {
      sb.append("exit code ").append(exit);
      if (exit > 128 && exit <= 128 + 64) {
        int sig = exit - 128;
        sb.append(" (killed by signal ").append(sig).append(sig == 9 ? ": SIGKILL, e.g. out of memory" : "").append(')');
      }
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
}

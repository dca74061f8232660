package io.kiln.worker.script;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.worker.sandbox.SandboxSettings;
import io.kiln.worker.task.TaskRunner;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Runs a user's script under the SageMaker training contract ("script mode"): algorithm
 * {@code script}. See {@code docs/script-mode.md} and {@link ScriptExecution} for the steps.
 *
 * <p>Settings (system properties or the worker's config): {@code kiln.data-dir} (the per-task
 * directories go to {@code <kiln.data-dir>/jobs/<task-id>/ml}), {@code kiln.worker.python} (the
 * interpreter of {@code .py} entry points, default {@code /usr/bin/python3}),
 * {@code kiln.worker.script.kill-grace} (SIGTERM to SIGKILL, default 10 s),
 * {@code kiln.cluster.host} (the address rank 0 publishes as {@code MASTER_ADDR}) and
 * {@code kiln.worker.rendezvous-timeout}.
 */
public final class ScriptRunner implements TaskRunner {
  public static final String NAME = ScriptSpec.ALGORITHM;

  /**
   * Where and how scripts run; {@code maxOutputBytes}/{@code maxLogBytes} are the defaults a job can
   * override ({@code kiln_max_output_mb}, {@code kiln_max_log_mb}); {@code checkpointInterval} how
   * often {@code checkpoints/} is synced to the store while the script runs; {@code maxPids} the
   * cgroup's {@code pids.max}.
   */
  public record Options(Path dataDir, String python, String host, Duration killGrace, Duration rendezvousTimeout,
                        SandboxSettings sandbox, long maxOutputBytes, long maxLogBytes, Duration checkpointInterval,
                        int maxPids) {
    static final long DEFAULT_MAX_OUTPUT = 10L << 30;
    static final long DEFAULT_MAX_LOG = 256L << 20;
    static final Duration DEFAULT_CHECKPOINT_INTERVAL = Duration.ofSeconds(10);
    static final int DEFAULT_MAX_PIDS = 4096;

    public static Options fromConfig(Config c) {
      Path dataDir = Path.of(c.hasPath("kiln.data-dir") ? c.getString("kiln.data-dir")
          : System.getProperty("user.home") + "/.kiln");
      String python = c.hasPath("kiln.worker.python") ? c.getString("kiln.worker.python") : "/usr/bin/python3";
      String host = c.hasPath("kiln.cluster.host") ? c.getString("kiln.cluster.host") : "127.0.0.1";
      Duration grace = c.hasPath("kiln.worker.script.kill-grace") ? c.getDuration("kiln.worker.script.kill-grace")
          : Duration.ofSeconds(10);
      Duration rendezvous = c.hasPath("kiln.worker.rendezvous-timeout") ? c.getDuration("kiln.worker.rendezvous-timeout")
          : Duration.ofSeconds(120);
      long maxOutput = c.hasPath("kiln.worker.script.max-output") ? c.getBytes("kiln.worker.script.max-output")
          : DEFAULT_MAX_OUTPUT;
      long maxLog = c.hasPath("kiln.worker.script.max-log") ? c.getBytes("kiln.worker.script.max-log") : DEFAULT_MAX_LOG;
      Duration sync = c.hasPath("kiln.worker.script.checkpoint-interval")
          ? c.getDuration("kiln.worker.script.checkpoint-interval") : DEFAULT_CHECKPOINT_INTERVAL;
      int pids = c.hasPath("kiln.worker.sandbox.max-pids") ? c.getInt("kiln.worker.sandbox.max-pids") : DEFAULT_MAX_PIDS;
      return new Options(dataDir.toAbsolutePath(), python, host, grace, rendezvous, SandboxSettings.fromConfig(c),
          maxOutput, maxLog, sync, pids);
    }

    public static Options defaults(Path dataDir) {
      return new Options(dataDir.toAbsolutePath(), "/usr/bin/python3", "127.0.0.1", Duration.ofSeconds(10),
          Duration.ofSeconds(120), SandboxSettings.defaults(), DEFAULT_MAX_OUTPUT, DEFAULT_MAX_LOG,
          DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MAX_PIDS);
    }

    public Options withKillGrace(Duration d) {
      return new Options(dataDir, python, host, d, rendezvousTimeout, sandbox, maxOutputBytes, maxLogBytes,
          checkpointInterval, maxPids);
    }

    public Options withRendezvousTimeout(Duration d) {
      return new Options(dataDir, python, host, killGrace, d, sandbox, maxOutputBytes, maxLogBytes,
          checkpointInterval, maxPids);
    }

    public Options withSandbox(SandboxSettings s) {
      return new Options(dataDir, python, host, killGrace, rendezvousTimeout, s, maxOutputBytes, maxLogBytes,
          checkpointInterval, maxPids);
    }

    public Options withOutputLimits(long maxOutput, long maxLog) {
      return new Options(dataDir, python, host, killGrace, rendezvousTimeout, sandbox, maxOutput, maxLog,
          checkpointInterval, maxPids);
    }

    public Options withMaxPids(int n) {
      return new Options(dataDir, python, host, killGrace, rendezvousTimeout, sandbox, maxOutputBytes, maxLogBytes,
          checkpointInterval, n);
    }

    public Options withCheckpointInterval(Duration d) {
      return new Options(dataDir, python, host, killGrace, rendezvousTimeout, sandbox, maxOutputBytes, maxLogBytes, d,
          maxPids);
    }
  }

  private final Options options;

  /** For the {@link java.util.ServiceLoader}: settings from {@code ConfigFactory.load()} at each run. */
  public ScriptRunner() {
    this(null);
  }

  public ScriptRunner(Options options) {
    this.options = options;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Outcome run(Context ctx) throws Exception {
    Options o = options != null ? options : Options.fromConfig(ConfigFactory.load());
    return new ScriptExecution(ctx, o).run();
  }
}

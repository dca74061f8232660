package io.kiln.worker.hosting;

import io.kiln.protocol.proto.HostedProcessReport;
import io.kiln.protocol.proto.HostedProcessReport.Outcome;
import io.kiln.protocol.proto.HostedProcessSpec;
import io.kiln.worker.sandbox.Sandbox;
import io.kiln.worker.sandbox.TaskLimits;
import io.kiln.worker.script.ProcessTree;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The deploy-module processes this worker runs for the coordinator (endpoint replicas and batch
 * transform splits). One per worker JVM, outside any actor system: like running tasks, hosted
 * processes outlive the actor system the worker restarts when the coordinator goes away, so a
 * restarted coordinator finds its replicas still serving.
 *
 * <p>Each process runs in a {@link Sandbox} (its own process group, killed with the worker even by
 * SIGKILL, a memory cgroup where there is one), started by a thread that waits for it (the kernel's
 * parent-death signal follows the starting thread). A server is ready once it printed
 * {@code kiln-serve: listening on URL} and answers {@code /ping}; a split is done when it exits.
 */
public final class HostedProcesses implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(HostedProcesses.class);
  private static final Pattern LISTENING = Pattern.compile("kiln-serve: listening on (http://\\S+)");
  private static final int TAIL_BYTES = 16 * 1024;
  private static final Duration STOP_GRACE = Duration.ofSeconds(10);

  private final HostingSettings settings;
  private final String workerId;
  private final Map<String, Hosted> byId = new ConcurrentHashMap<>();
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  public HostedProcesses(HostingSettings settings, String workerId) {
    this.settings = settings;
    this.workerId = workerId;
  }

  /** A worker that hosts nothing (tests, embedded workers): every start fails saying why. */
  public static HostedProcesses none(String workerId) {
    return new HostedProcesses(new HostingSettings("127.0.0.1", "", "java", List.of(), Path.of(System.getProperty("java.io.tmpdir")),
        io.kiln.worker.sandbox.SandboxSettings.defaults()), workerId);
  }

  /** Ids of the processes running now. */
  public List<String> running() {
    return byId.entrySet().stream().filter(e -> e.getValue().alive()).map(Map.Entry::getKey).sorted().toList();
  }

  /**
   * Starts {@code spec} (or joins the one already running under its id) and completes with its
   * report: ready (a server), exited (a split) or failed. Never completes exceptionally.
   */
  public CompletableFuture<HostedProcessReport> start(HostedProcessSpec spec) {
    if (spec.getId().isBlank() || spec.getMainClass().isBlank()) {
      return CompletableFuture.completedFuture(failed(spec, "a hosted process needs an id and a main class", ""));
    }
    if (settings.classpath().isBlank()) {
      return CompletableFuture.completedFuture(failed(spec, "worker " + workerId + " cannot host processes: "
          + "kiln.worker.hosting.classpath is not set (the deploy module's classpath; LocalCluster and ./kiln set it "
          + "when deploy/target is built)", ""));
    }
    Hosted h = byId.compute(spec.getId(), (id, old) -> old != null && old.alive() ? old : new Hosted(spec));
    h.begin();
    return h.report;
  }

  /** SIGTERM to the process group, SIGKILL after a grace period; blocks until it is gone. */
  public void stop(String id, String reason) {
    Hosted h = byId.get(id);
    if (h == null) return;
    LOG.info("stopping hosted process {}: {}", id, reason);
    h.stop();
  }

  /** Stops everything (the worker is going away). */
  @Override
  public void close() {
    new ArrayList<>(byId.values()).parallelStream().forEach(Hosted::stop);
  }

  private final class Hosted {
    final HostedProcessSpec spec;
    final CompletableFuture<HostedProcessReport> report = new CompletableFuture<>();
    final Path log;
    volatile ProcessTree tree;
    volatile boolean stopping;
    volatile boolean ended;
    private boolean begun;

    Hosted(HostedProcessSpec spec) {
      this.spec = spec;
      this.log = settings.logDir().resolve(spec.getId().replaceAll("[^A-Za-z0-9._-]", "_") + ".log");
    }

    boolean alive() {
      return !ended;
    }

    synchronized void begin() {
      if (begun) return;
      begun = true;
      Thread t = new Thread(this::run, "kiln-hosted-" + spec.getId());
      t.setDaemon(true);
      t.start();
    }

    /** Starts the process and waits for it, on this one thread (see the class comment). */
    private void run() {
      TaskLimits limits = new TaskLimits(spec.getMemoryMb() << 20, 0, 0, 0);
      try (Sandbox sandbox = Sandbox.open(settings.sandbox(), "hosted-" + Integer.toHexString(spec.getId().hashCode()),
          limits, w -> LOG.debug("hosted process {}: {}", spec.getId(), w))) {
        Files.createDirectories(log.getParent());
        List<String> cmd = new ArrayList<>(sandbox.prefix());
        cmd.add(settings.java());
        cmd.addAll(settings.jvmOptions());
        String djl = System.getProperty("DJL_CACHE_DIR");
        if (djl != null) cmd.add("-DDJL_CACHE_DIR=" + djl);
        cmd.addAll(spec.getJvmArgsList());
        cmd.addAll(List.of("-cp", settings.classpath(), spec.getMainClass()));
        spec.getArgsList().forEach(a -> cmd.add(a.replace("{worker-host}", settings.host())));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().putAll(spec.getEnvMap());
        tree = ProcessTree.start(pb);
        LOG.info("hosted process {} started (pid {}, {}, log {})", spec.getId(), tree.pid(), sandbox.describe(), log);
        if (!spec.getWaitForExit()) watchReadiness();
        boolean inTime = spec.getWaitForExit() && spec.getTimeoutMs() > 0
            ? tree.process().waitFor(spec.getTimeoutMs(), TimeUnit.MILLISECONDS) : waitForever();
        if (!inTime) {
          tree.terminate(STOP_GRACE);
          report.complete(failed(spec, spec.getId() + " did not finish within " + spec.getTimeoutMs() / 1000 + " s", tail()));
          return;
        }
        int exit = tree.process().exitValue();
        String explained = sandbox.explain(exit);
        tree.terminate(Duration.ofSeconds(1)); // whatever it left behind
        if (spec.getWaitForExit()) {
          report.complete(base(Outcome.EXITED).setExitCode(exit).setReason(explained == null ? "" : explained)
              .setOutputTail(tail()).build());
        } else {
          String why = stopping ? "stopped" : explained != null ? explained : "exited (" + exit + "): " + lastWords(tail());
          report.complete(base(Outcome.FAILED).setExitCode(exit).setReason(why).setOutputTail(tail()).build());
          if (!stopping) LOG.warn("hosted process {} ended: {}", spec.getId(), why);
        }
      } catch (IOException | RuntimeException e) {
        report.complete(failed(spec, "cannot start " + spec.getId() + " on worker " + workerId + ": " + e.getMessage(), tail()));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        report.complete(failed(spec, "interrupted", tail()));
      } finally {
        ended = true;
        byId.remove(spec.getId(), this);
      }
    }

    private boolean waitForever() throws InterruptedException {
      tree.process().waitFor();
      return true;
    }

    /** A server: polls its log for the listening line, then /ping, off the waiting thread. */
    private void watchReadiness() {
      Thread t = new Thread(() -> {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(spec.getTimeoutMs() > 0 ? spec.getTimeoutMs() : 120_000);
        String url = null;
        while (!report.isDone() && System.nanoTime() < deadline) {
          if (url == null) {
            Matcher m = LISTENING.matcher(tail());
            if (m.find()) url = m.group(1);
          }
          if (url != null && ping(url)) {
            report.complete(base(Outcome.READY).setUrl(url).setOutputTail(tail()).build());
            return;
          }
          sleep(50);
        }
        if (!report.isDone()) {
          report.complete(failed(spec, spec.getId() + " was not ready within " + spec.getTimeoutMs() / 1000 + " s", tail()));
          stop();
        }
      }, "kiln-hosted-ready-" + spec.getId());
      t.setDaemon(true);
      t.start();
    }

    void stop() {
      stopping = true;
      ProcessTree t = tree;
      if (t != null) t.terminate(STOP_GRACE);
    }

    private boolean ping(String url) {
      try {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + "/ping")).timeout(Duration.ofSeconds(2)).GET();
        String token = spec.getEnvMap().get("KILN_TOKEN");
        if (token != null) b.header("Authorization", "Bearer " + token);
        return http.send(b.build(), HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
      } catch (IOException e) {
        return false;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }

    private HostedProcessReport.Builder base(Outcome o) {
      ProcessTree t = tree;
      return HostedProcessReport.newBuilder().setId(spec.getId()).setWorkerId(workerId).setOutcome(o)
          .setPid(t == null ? 0 : t.pid()).setLogPath(log.toString());
    }

    private String tail() {
      try (RandomAccessFile f = new RandomAccessFile(log.toFile(), "r")) {
        long from = Math.max(0, f.length() - TAIL_BYTES);
        byte[] b = new byte[(int) (f.length() - from)];
        f.seek(from);
        f.readFully(b);
        return new String(b, StandardCharsets.UTF_8);
      } catch (IOException e) {
        return "";
      }
    }
  }

  private HostedProcessReport failed(HostedProcessSpec spec, String reason, String tail) {
    return HostedProcessReport.newBuilder().setId(spec.getId()).setWorkerId(workerId).setOutcome(Outcome.FAILED)
        .setReason(reason).setOutputTail(tail).build();
  }

  /** A deploy process's own message ("kiln-serve: cannot start: ..."), else the last line it wrote. */
  public static String lastWords(String out) {
    String mine = null;
    String last = "no output";
    for (String line : out.split("\n")) {
      if (line.startsWith("kiln-serve: ") || line.startsWith("kiln-transform: ")) mine = line.substring(line.indexOf(": ") + 2).trim();
      else if (!line.isBlank()) last = line.trim();
    }
    return mine != null ? mine : last;
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}

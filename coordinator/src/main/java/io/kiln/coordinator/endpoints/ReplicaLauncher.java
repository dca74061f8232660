package io.kiln.coordinator.endpoints;

import com.typesafe.config.Config;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Starts and stops an endpoint's replicas: each one an {@code io.kiln.deploy.ServeMain} child process
 * of the coordinator on a free local port ({@code --port 0}, {@code --preload true}), with the
 * coordinator's API token in {@code KILN_TOKEN}. A replica is ready when it printed its listening
 * line and answers {@code /ping}; one that exits first fails the launch with its own last words
 * (e.g. the corrupt file). Blocking: callers run it on the blocking dispatcher.
 */
public final class ReplicaLauncher {
  /** The first JVM argument of every replica, so that a recorded pid is only stopped if it is still one. */
  static final String MARKER = "-Dkiln.endpoint.replica=";
  private static final Pattern LISTENING = Pattern.compile("kiln-serve: listening on (http://\\S+)");

  /** What a launch needs from the coordinator's config. */
  public record Settings(String classpath, String java, List<String> jvmOptions, Duration startTimeout,
                         Duration drainTimeout, Path logDir, String token) {
    public static Settings of(Config c, Path dataDir, String token) {
      String java = c.getString("kiln.endpoints.java");
      return new Settings(c.getString("kiln.endpoints.serve-classpath"),
          java.isBlank() ? Path.of(System.getProperty("java.home"), "bin", "java").toString() : java,
          c.getStringList("kiln.endpoints.jvm-options"), c.getDuration("kiln.endpoints.start-timeout"),
          c.getDuration("kiln.endpoints.drain-timeout"), dataDir.resolve("endpoints"), token);
    }
  }

  /** A launch that did not come up; the message is the replica's reason. */
  public static final class StartException extends RuntimeException {
    public StartException(String message) {
      super(message, null, false, false);
    }
  }

  private final Settings settings;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private final Set<Long> live = ConcurrentHashMap.newKeySet();

  public ReplicaLauncher(Settings settings) {
    this.settings = settings;
    // A coordinator stopping normally takes its replicas with it (a SIGKILLed one: the next start stops them).
    Runtime.getRuntime().addShutdownHook(new Thread(() -> live.forEach(p -> ProcessHandle.of(p).ifPresent(ProcessHandle::destroy))));
  }

  public Settings settings() {
    return settings;
  }

  /** Starts {@code instances} replicas of every variant at once and waits for all; all or none. */
  public List<EndpointReplica> launch(String endpoint, long generation, EndpointConfig config) {
    List<Started> started = new ArrayList<>();
    try {
      for (EndpointVariant v : config.getVariantsList()) {
        for (int i = 0; i < v.getInstances(); i++) started.add(start(endpoint, generation, config, v));
      }
      List<EndpointReplica> ready = new ArrayList<>();
      for (Started s : started) ready.add(await(s));
      return ready;
    } catch (RuntimeException e) {
      started.forEach(s -> stop(s.process.pid()));
      throw e;
    }
  }

  /** One more replica of {@code variant} (autoscaling). */
  public EndpointReplica launchOne(String endpoint, long generation, EndpointConfig config, EndpointVariant variant) {
    Started s = start(endpoint, generation, config, variant);
    try {
      return await(s);
    } catch (RuntimeException e) {
      stop(s.process.pid());
      throw e;
    }
  }

  /** Whether a recorded replica still runs and answers {@code /ping} (after a coordinator restart). */
  public boolean answers(EndpointReplica r) {
    boolean alive = ProcessHandle.of(r.getPid()).map(ProcessHandle::isAlive).orElse(false);
    if (alive && ping(r.getUrl())) {
      live.add(r.getPid());
      return true;
    }
    return false;
  }

  /** SIGTERM, then SIGKILL after 10 s. Only a ServeMain process: a recorded pid may have been reused. */
  public void stop(long pid) {
    Optional<ProcessHandle> h = ProcessHandle.of(pid);
    boolean ours = live.remove(pid);
    if (h.isEmpty() || !ours && !h.get().info().arguments().map(a -> a.length > 0 && a[0].startsWith(MARKER)).orElse(false)) return;
    h.get().destroy();
    try {
      h.get().onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
    } catch (Exception e) {
      h.get().destroyForcibly();
    }
  }

  private record Started(Process process, EndpointVariant variant, long generation, Path log) {}

  private Started start(String endpoint, long generation, EndpointConfig config, EndpointVariant v) {
    if (settings.classpath().isBlank()) {
      throw new StartException("the coordinator cannot start replicas: kiln.endpoints.serve-classpath is not set "
          + "(the deploy module's classpath; LocalCluster and ./kiln set it when deploy/target is built)");
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(settings.java());
    cmd.add(MARKER + endpoint); // first: the OS may truncate a long command line (the classpath)
    cmd.addAll(settings.jvmOptions());
    String djl = System.getProperty("DJL_CACHE_DIR");
    if (djl != null) cmd.add("-DDJL_CACHE_DIR=" + djl);
    cmd.addAll(List.of("-cp", settings.classpath(), "io.kiln.deploy.ServeMain", "--model", v.getModelUri(),
        "--name", v.getName(), "--port", "0", "--host", "127.0.0.1", "--preload", "true"));
    if (config.getMaxConcurrency() > 0) cmd.addAll(List.of("--max-concurrency", Integer.toString(config.getMaxConcurrency())));
    if (config.getIdleTimeoutMs() > 0) cmd.addAll(List.of("--idle-timeout", config.getIdleTimeoutMs() + "ms"));
    if (!config.getCaptureUri().isEmpty()) {
      cmd.addAll(List.of("--capture-uri", config.getCaptureUri(), "--capture-percent", Double.toString(config.getCapturePercent())));
    }
    try {
      Path dir = settings.logDir().resolve(endpoint);
      Files.createDirectories(dir);
      Path log = Files.createTempFile(dir, v.getName() + "-g" + generation + "-", ".log");
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
      pb.environment().put("KILN_TOKEN", settings.token());
      Process p = pb.start();
      live.add(p.pid());
      return new Started(p, v, generation, log);
    } catch (IOException e) {
      throw new StartException("cannot start a replica of variant " + v.getName() + ": " + e.getMessage());
    }
  }

  private EndpointReplica await(Started s) {
    long deadline = System.nanoTime() + settings.startTimeout().toNanos();
    String url = null;
    while (System.nanoTime() < deadline) {
      String out = read(s.log);
      Matcher m = LISTENING.matcher(out);
      if (url == null && m.find()) url = m.group(1);
      if (url != null && ping(url)) {
        return EndpointReplica.newBuilder().setVariant(s.variant.getName()).setUrl(url).setPid(s.process.pid())
            .setGeneration(s.generation).build();
      }
      if (!s.process.isAlive()) {
        live.remove(s.process.pid());
        throw new StartException("variant " + s.variant.getName() + ": the replica exited (" + s.process.exitValue()
            + "): " + lastWords(out) + " (log " + s.log + ")");
      }
      sleep(100);
    }
    throw new StartException("variant " + s.variant.getName() + ": the replica was not ready within "
        + settings.startTimeout().toSeconds() + " s (log " + s.log + ")");
  }

  private boolean ping(String url) {
    try {
      HttpResponse<Void> r = http.send(HttpRequest.newBuilder(URI.create(url + "/ping")).timeout(Duration.ofSeconds(2))
          .header("Authorization", "Bearer " + settings.token()).GET().build(), HttpResponse.BodyHandlers.discarding());
      return r.statusCode() == 200;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StartException("interrupted");
    }
  }

  /** ServeMain's own message ("kiln-serve: cannot start: ..."), else the last line it wrote. */
  static String lastWords(String out) {
    String last = "no output";
    for (String line : out.split("\n")) {
      if (line.startsWith("kiln-serve: ")) last = line.substring("kiln-serve: ".length());
      else if (!line.isBlank() && last.equals("no output")) last = line;
    }
    return last.trim();
  }

  private static String read(Path log) {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      return "";
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StartException("interrupted");
    }
  }
}

package io.kiln.coordinator.transform;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import io.kiln.protocol.proto.TransformJobConfig;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs one split of a transform job: an {@code io.kiln.deploy.transform.TransformMain} child process of
 * the coordinator (the classpath and JVM options of endpoint replicas), and reads its last line
 * {@code {"rows_done":..,"rows_failed":..}}. Also assembles the splits' part files. Blocking.
 */
public final class SplitRunner {
  static final String MARKER = "-Dkiln.transform.split=";
  private static final ObjectMapper JSON = new ObjectMapper();

  public record Settings(String classpath, String java, List<String> jvmOptions, Duration splitTimeout, Path logDir) {
    public static Settings of(Config c, Path dataDir) {
      String java = c.getString("kiln.endpoints.java");
      return new Settings(c.getString("kiln.endpoints.serve-classpath"),
          java.isBlank() ? Path.of(System.getProperty("java.home"), "bin", "java").toString() : java,
          c.getStringList("kiln.endpoints.jvm-options"), c.getDuration("kiln.transform.split-timeout"),
          dataDir.resolve("transform"));
    }
  }

  /** The outcome of one attempt: counts, or a reason (fatal: exit 2, not worth retrying). */
  public record Result(boolean ok, long rowsDone, long rowsFailed, String reason, boolean fatal) {}

  private final Settings settings;
  private final Set<Process> live = ConcurrentHashMap.newKeySet();

  public SplitRunner(Settings settings) {
    this.settings = settings;
    Runtime.getRuntime().addShutdownHook(new Thread(() -> live.forEach(Process::destroy)));
  }

  public Result run(String job, TransformJobConfig c, int split, int attempt) {
    if (settings.classpath().isBlank()) {
      return new Result(false, 0, 0, "the coordinator cannot run transform splits: kiln.endpoints.serve-classpath is not set "
          + "(the deploy module's classpath; LocalCluster and ./kiln set it when deploy/target is built)", true);
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(settings.java());
    cmd.add(MARKER + job + "/" + split);
    cmd.addAll(settings.jvmOptions());
    String djl = System.getProperty("DJL_CACHE_DIR");
    if (djl != null) cmd.add("-DDJL_CACHE_DIR=" + djl);
    // test-only fault injection (TransformMain's javadoc), forwarded from the coordinator's own properties
    System.getProperties().stringPropertyNames().stream().filter(k -> k.startsWith("kiln.transform.test."))
        .forEach(k -> cmd.add("-D" + k + "=" + System.getProperty(k)));
    cmd.addAll(List.of("-cp", settings.classpath(), "io.kiln.deploy.transform.TransformMain", "--model", c.getModelUri(),
        "--input", c.getInput(), "--output", c.getOutput(), "--split", split + "/" + c.getSplits()));
    if (!c.getContentType().isEmpty()) cmd.addAll(List.of("--content-type", c.getContentType()));
    Path log;
    Process p;
    try {
      Path dir = settings.logDir().resolve(job);
      Files.createDirectories(dir);
      log = dir.resolve("split-" + split + "-attempt-" + attempt + ".log");
      p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    } catch (IOException e) {
      return new Result(false, 0, 0, "cannot start split " + split + ": " + e.getMessage(), false);
    }
    live.add(p);
    try {
      if (!p.waitFor(settings.splitTimeout().toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        return new Result(false, 0, 0, "split " + split + " did not finish within " + settings.splitTimeout().toSeconds()
            + " s (log " + log + ")", false);
      }
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      return new Result(false, 0, 0, "interrupted", false);
    } finally {
      live.remove(p);
    }
    String out;
    try {
      out = Files.readString(log);
    } catch (IOException e) {
      out = "";
    }
    if (p.exitValue() == 0) {
      String[] lines = out.strip().split("\n");
      try {
        JsonNode n = JSON.readTree(lines[lines.length - 1]);
        return new Result(true, n.path("rows_done").asLong(), n.path("rows_failed").asLong(), "", false);
      } catch (IOException e) {
        return new Result(false, 0, 0, "split " + split + " ended without its counts (log " + log + ")", false);
      }
    }
    return new Result(false, 0, 0, "split " + split + " exited " + p.exitValue() + ": " + lastWords(out) + " (log " + log + ")",
        p.exitValue() == 2);
  }

  static String lastWords(String out) {
    String last = null;
    String any = "no output";
    for (String line : out.split("\n")) {
      if (line.startsWith("kiln-transform: ")) last = line.substring("kiln-transform: ".length()).trim();
      else if (!line.isBlank() && any.equals("no output")) any = line.trim();
    }
    return last != null ? last : any;
  }

  /**
   * With several splits, concatenates every {@code <file>.out.part-i} (and {@code .errors.part-i}) in
   * split order into {@code <file>.out} ({@code <file>.errors}) and removes the parts. Returns the outputs.
   */
  public List<String> assemble(TransformJobConfig c) throws IOException {
    Path out = Path.of(c.getOutput());
    List<String> bases;
    try (Stream<Path> s = Files.list(out)) {
      bases = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".out" + part(c, 0))).sorted()
          .map(n -> n.substring(0, n.length() - (".out" + part(c, 0)).length())).toList();
    }
    List<String> outputs = new ArrayList<>();
    for (String b : bases) {
      for (String kind : List.of(".out", ".errors")) {
        Path target = out.resolve(b + kind);
        if (c.getSplits() > 1) {
          try (OutputStream os = Files.newOutputStream(target)) {
            for (int i = 0; i < c.getSplits(); i++) {
              Path partFile = out.resolve(b + kind + part(c, i));
              if (Files.exists(partFile)) {
                Files.copy(partFile, os);
                Files.delete(partFile);
              }
            }
          }
        }
        outputs.add(target.toString());
      }
    }
    for (int i = 0; i < c.getSplits(); i++) Files.deleteIfExists(out.resolve(".fail-once-" + i));
    return outputs;
  }

  private static String part(TransformJobConfig c, int i) {
    return c.getSplits() == 1 ? "" : ".part-" + i;
  }
}

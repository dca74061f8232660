package io.kiln.coordinator.transform;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import io.kiln.coordinator.hosting.HostingException;
import io.kiln.coordinator.hosting.WorkerHosts;
import io.kiln.protocol.proto.HostedProcessReport;
import io.kiln.protocol.proto.HostedProcessSpec;
import io.kiln.protocol.proto.TransformJobConfig;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Runs one split of a transform job: an {@code io.kiln.deploy.transform.TransformMain} process hosted
 * by a worker ({@link WorkerHosts}: the least busy one, so a job's splits spread across workers),
 * and reads its last line {@code {"rows_done":..,"rows_failed":..}}. A worker that leaves mid-split
 * fails the attempt (the job retries it elsewhere). Also assembles the splits' part files. Blocking.
 */
public final class SplitRunner {
  static final String TRANSFORM_MAIN = "io.kiln.deploy.transform.TransformMain";
  private static final ObjectMapper JSON = new ObjectMapper();

  public record Settings(Duration splitTimeout) {
    public static Settings of(Config c) {
      return new Settings(c.getDuration("kiln.transform.split-timeout"));
    }
  }

  /** The outcome of one attempt: counts, or a reason (fatal: exit 2, not worth retrying); where it ran. */
  public record Result(boolean ok, long rowsDone, long rowsFailed, String reason, boolean fatal, String worker) {
    public Result(boolean ok, long rowsDone, long rowsFailed, String reason, boolean fatal) {
      this(ok, rowsDone, rowsFailed, reason, fatal, "");
    }
  }

  private final Settings settings;
  private final WorkerHosts hosts;

  public SplitRunner(Settings settings, WorkerHosts hosts) {
    this.settings = settings;
    this.hosts = hosts;
  }

  public Result run(String job, TransformJobConfig c, int split, int attempt) {
    HostedProcessSpec.Builder spec = HostedProcessSpec.newBuilder()
        .setId("transform/" + job + "/" + split + "/" + attempt)
        .setMainClass(TRANSFORM_MAIN)
        .setWaitForExit(true)
        .setTimeoutMs(settings.splitTimeout().toMillis())
        .addJvmArgs("-Dkiln.transform.split=" + job + "/" + split);
    // test-only fault injection (TransformMain's javadoc), forwarded from the coordinator's own properties
    System.getProperties().stringPropertyNames().stream().filter(k -> k.startsWith("kiln.transform.test."))
        .forEach(k -> spec.addJvmArgs("-D" + k + "=" + System.getProperty(k)));
    spec.addAllArgs(List.of("--model", c.getModelUri(), "--input", c.getInput(), "--output", c.getOutput(),
        "--split", split + "/" + c.getSplits()));
    if (!c.getContentType().isEmpty()) spec.addAllArgs(List.of("--content-type", c.getContentType()));
    WorkerHosts.Placed placed;
    try {
      placed = hosts.start(spec.build(), Duration.ofSeconds(30));
    } catch (HostingException e) {
      return new Result(false, 0, 0, "split " + split + ": " + e.getMessage(), false);
    }
    HostedProcessReport r = placed.report();
    String where = " on worker " + placed.worker() + (r.getLogPath().isEmpty() ? "" : " (log " + r.getLogPath() + ")");
    if (r.getOutcome() != HostedProcessReport.Outcome.EXITED) {
      return new Result(false, 0, 0, "split " + split + ": " + r.getReason() + where, false, placed.worker());
    }
    String out = r.getOutputTail();
    if (r.getExitCode() == 0) {
      String[] lines = out.strip().split("\n");
      try {
        JsonNode n = JSON.readTree(lines[lines.length - 1]);
        return new Result(true, n.path("rows_done").asLong(), n.path("rows_failed").asLong(), "", false, placed.worker());
      } catch (IOException e) {
        return new Result(false, 0, 0, "split " + split + " ended without its counts" + where, false, placed.worker());
      }
    }
    String why = !r.getReason().isEmpty() ? r.getReason() : lastWords(out);
    return new Result(false, 0, 0, "split " + split + " exited " + r.getExitCode() + ": " + why + where,
        r.getExitCode() == 2, placed.worker());
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

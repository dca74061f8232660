package io.kiln.coordinator.telemetry;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.protocol.proto.LogLine;
import io.kiln.protocol.proto.Progress;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Live telemetry of jobs: log lines (kept in a JSON-lines file per job, so they survive restarts)
 * and the latest progress (in memory; the journal holds the checkpoints). Subscribers get the
 * backlog then every new event, with no gap and no duplicate: both happen under the job's lock.
 *
 * <p>Thread-safe. Written by job entities, read by the HTTP API's server-sent-event streams.
 */
public final class JobTelemetry {
  private static final Logger log = LoggerFactory.getLogger(JobTelemetry.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  /** One event of a stream: {@code type} is log, progress, status or end; {@code json} its data. */
  public record Event(String type, String json) {}

  /** Which events a subscriber wants. */
  public enum Stream { LOGS, METRICS }

  private final Path dir;
  private final Map<String, Channel> channels = new ConcurrentHashMap<>();

  public JobTelemetry(Path dir) {
    this.dir = dir;
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create job log directory " + dir, e);
    }
  }

  public void logs(String jobId, String workerId, List<LogLine> lines) {
    Channel c = channel(jobId);
    synchronized (c) {
      for (LogLine l : lines) {
        ObjectNode n = JSON.createObjectNode();
        n.put("at", Instant.ofEpochMilli(l.getTimestampMs()).toString());
        n.put("level", l.getLevel().isEmpty() ? "INFO" : l.getLevel());
        n.put("worker", workerId);
        n.put("message", l.getMessage());
        String json = n.toString();
        c.append(json);
        c.publish(Stream.LOGS, new Event("log", json));
      }
    }
  }

  /** A line from the coordinator itself about the job (scheduling, failures). */
  public void controlLog(String jobId, String level, String message) {
    logs(jobId, "coordinator", List.of(LogLine.newBuilder().setTimestampMs(System.currentTimeMillis())
        .setLevel(level).setMessage(message).build()));
  }

  public void progress(String jobId, Progress p) {
    Channel c = channel(jobId);
    synchronized (c) {
      c.progress = p;
      c.publish(Stream.METRICS, new Event("progress", progressJson(p)));
    }
  }

  public Progress latestProgress(String jobId) {
    Channel c = channels.get(jobId);
    return c == null ? null : c.progress;
  }

  /** A status change; {@code statusJson} is the data of the status event. */
  public void status(String jobId, String statusJson, boolean isFinal, String finalStatus) {
    Channel c = channel(jobId);
    synchronized (c) {
      c.publish(Stream.METRICS, new Event("status", statusJson));
      if (isFinal) {
        c.finalStatus = finalStatus;
        Event end = new Event("end", "{\"status\":\"" + finalStatus + "\"}");
        c.publish(Stream.LOGS, end);
        c.publish(Stream.METRICS, end);
        c.subscribers.clear();
        c.closeWriter(); // a finished job writes no more: don't hold a file handle per job forever
      }
    }
  }

  /** What a subscriber gets at once; live events follow through the sink unless {@code ended}. */
  public record Subscription(List<Event> backlog, boolean ended, Runnable cancel) {}

  /**
   * The backlog (log lines, or the latest progress) and, if {@code follow} and the job has not
   * ended, a registration that passes every later event to {@code live} until the job's end event.
   * {@code finalStatus} is what the journal says now (null while the job runs). Backlog and
   * registration happen under the job's lock, so no event is lost or sent twice between them.
   */
  public Subscription subscribe(String jobId, Stream stream, boolean follow, String finalStatus, Consumer<Event> live) {
    Channel c = channel(jobId);
    synchronized (c) {
      List<Event> backlog = new ArrayList<>();
      if (stream == Stream.LOGS) {
        for (String line : c.readAll()) backlog.add(new Event("log", line));
      } else if (c.progress != null) {
        backlog.add(new Event("progress", progressJson(c.progress)));
      }
      String fin = finalStatus != null ? finalStatus : c.finalStatus;
      if (!follow || fin != null) {
        backlog.add(new Event("end", "{\"status\":\"" + (fin == null ? "Running" : fin) + "\"}"));
        return new Subscription(backlog, true, () -> {});
      }
      Subscriber s = new Subscriber(stream, live);
      c.subscribers.add(s);
      return new Subscription(backlog, false, () -> c.subscribers.remove(s));
    }
  }

  public static String progressJson(Progress p) {
    ObjectNode n = JSON.createObjectNode();
    n.put("step", p.getStep());
    n.put("totalSteps", p.getTotalSteps());
    n.put("epoch", p.getEpoch());
    n.put("totalEpochs", p.getTotalEpochs());
    n.put("loss", p.getLoss());
    n.put("samplesPerSec", p.getSamplesPerSec());
    n.put("computeMsPerStep", p.getComputeMsPerStep());
    n.put("commMsPerStep", p.getCommMsPerStep());
    ObjectNode m = n.putObject("metrics");
    p.getMetricsMap().forEach(m::put);
    n.put("at", Instant.ofEpochMilli(p.getTimestampMs()).toString());
    return n.toString();
  }

  private Channel channel(String jobId) {
    return channels.computeIfAbsent(jobId, id -> new Channel(dir.resolve(id + ".log.jsonl")));
  }

  private record Subscriber(Stream stream, Consumer<Event> sink) {}

  private static final class Channel {
    final Path file;
    final List<Subscriber> subscribers = new CopyOnWriteArrayList<>();
    BufferedWriter writer;
    Progress progress;
    String finalStatus;

    Channel(Path file) {
      this.file = file;
    }

    void append(String json) {
      try {
        if (writer == null) {
          writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
        writer.write(json);
        writer.newLine();
        writer.flush();
      } catch (IOException e) {
        log.warn("cannot append to job log {}: {}", file, e.getMessage());
      }
    }

    void closeWriter() {
      if (writer == null) return;
      try {
        writer.close();
      } catch (IOException e) {
        log.warn("cannot close job log {}: {}", file, e.getMessage());
      }
      writer = null;
    }

    List<String> readAll() {
      try {
        return Files.exists(file) ? Files.readAllLines(file, StandardCharsets.UTF_8) : new ArrayList<>();
      } catch (IOException e) {
        log.warn("cannot read job log {}: {}", file, e.getMessage());
        return List.of();
      }
    }

    void publish(Stream stream, Event e) {
      for (Subscriber s : subscribers) {
        if (s.stream() == stream) {
          try {
            s.sink().accept(e);
          } catch (RuntimeException ex) {
            subscribers.remove(s);
          }
        }
      }
    }
  }
}

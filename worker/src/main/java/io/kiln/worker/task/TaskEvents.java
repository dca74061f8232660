package io.kiln.worker.task;

import io.kiln.protocol.proto.LogLine;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskCheckpoint;
import io.kiln.protocol.proto.TaskCompleted;
import io.kiln.protocol.proto.TaskFailed;
import io.kiln.protocol.proto.TaskLogs;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.TaskStarted;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds a task's {@link TaskReport}s (job, task and worker ids set) and sends them through a sink
 * (the job's {@code reportTo} ref). Log lines are batched: they go out before each progress report,
 * when 200 are waiting, and before the final report. Exactly one final report (completed or failed)
 * is ever sent; later ones are dropped. Thread-safe.
 */
public final class TaskEvents {
  private static final Logger log = LoggerFactory.getLogger(TaskEvents.class);
  private static final int MAX_BATCH = 200;

  private final String jobId;
  private final String taskId;
  private final String workerId;
  private Consumer<TaskReport> sink;
  private final List<LogLine> pending = new ArrayList<>();
  private boolean finished;
  /** Reports held while no coordinator listens (it restarts): sent in order on {@link #attach}. */
  private final java.util.ArrayDeque<TaskReport> held = new java.util.ArrayDeque<>();
  private boolean detached;
  /** The completed or failed report, kept to send again (see {@link #detachAfterFinish}). */
  private TaskReport finalReport;
  private static final int MAX_HELD = 2000;

  public TaskEvents(String jobId, String taskId, String workerId, Consumer<TaskReport> sink) {
    this.jobId = jobId;
    this.taskId = taskId;
    this.workerId = workerId;
    this.sink = sink;
  }

  private TaskReport.Builder report() {
    return TaskReport.newBuilder().setJobId(jobId).setTaskId(taskId).setWorkerId(workerId);
  }

  public synchronized void started() {
    send(report().setStarted(TaskStarted.newBuilder().setTimestampMs(System.currentTimeMillis())).build());
  }

  public void info(String message) {
    log("INFO", message);
  }

  public void warn(String message) {
    log("WARN", message);
  }

  public synchronized void log(String level, String message) {
    if ("WARN".equals(level) || "ERROR".equals(level)) {
      log.warn("[{}] {}", taskId, message);
    } else {
      log.info("[{}] {}", taskId, message);
    }
    if (finished) return;
    pending.add(LogLine.newBuilder().setTimestampMs(System.currentTimeMillis()).setLevel(level).setMessage(message)
        .build());
    if (pending.size() >= MAX_BATCH) flushLogs();
  }

  public synchronized void progress(Progress progress) {
    if (finished) return;
    flushLogs();
    send(report().setProgress(progress).build());
  }

  /** This rank listens on its data plane and waits for its group (distributed tasks). */
  public synchronized void rendezvous(io.kiln.protocol.proto.TaskRendezvous r) {
    if (finished) return;
    flushLogs();
    send(report().setRendezvous(r).build());
  }

  /**
   * A checkpoint is complete in the artifact store (rank 0; the coordinator records it as
   * {@code JobCheckpointCommitted}). Waiting log lines go first. Called from the checkpoint writer's
   * thread.
   */
  public synchronized void checkpoint(TaskCheckpoint checkpoint) {
    if (finished) return;
    flushLogs();
    send(report().setCheckpoint(checkpoint).build());
  }

  public synchronized void flushLogs() {
    if (pending.isEmpty() || finished) return;
    send(report().setLogs(TaskLogs.newBuilder().addAllLines(pending)).build());
    pending.clear();
  }

  /** Sends the completed report unless a final report went out already; returns whether it was sent. */
  public synchronized boolean completed(String modelUri, Map<String, Double> metrics) {
    if (finished) return false;
    flushLogs();
    finished = true;
    finalReport = report().setCompleted(TaskCompleted.newBuilder().setModelUri(modelUri).putAllMetrics(metrics)
        .setTimestampMs(System.currentTimeMillis())).build();
    send(finalReport);
    return true;
  }

  /** Sends the failed report unless a final report went out already; returns whether it was sent. */
  public synchronized boolean failed(String reason) {
    if (finished) return false;
    flushLogs();
    finished = true;
    finalReport = report().setFailed(TaskFailed.newBuilder().setReason(reason)
        .setTimestampMs(System.currentTimeMillis())).build();
    send(finalReport);
    return true;
  }

  public synchronized boolean isFinished() {
    return finished;
  }

  /**
   * The coordinator went away (it restarts): hold reports until a new one {@link #attach}es. The
   * task keeps running; progress and logs beyond a bound are dropped while detached, everything
   * else (rendezvous, checkpoints, the final report) is kept.
   */
  public synchronized void detach() {
    detached = true;
  }

  /** A (restarted) coordinator adopted the task: reports go to {@code newSink}, held ones first. */
  public synchronized void attach(Consumer<TaskReport> newSink) {
    sink = newSink;
    detached = false;
    while (!held.isEmpty()) send(held.poll());
  }

  public synchronized boolean isDetached() {
    return detached;
  }

  /**
   * The task ended shortly before its coordinator went away: its final report may have gone to a
   * node that was already dead. Hold it again, to be sent once more on {@link #attach} (a job
   * ignores a repeated final report).
   */
  public synchronized void detachAfterFinish() {
    if (finalReport == null) return;
    detached = true;
    held.clear();
    held.add(finalReport);
  }

  private void send(TaskReport r) {
    if (detached) {
      if (held.size() >= MAX_HELD && (r.hasProgress() || r.hasLogs())) return;
      if (r.hasProgress()) held.removeIf(TaskReport::hasProgress); // only the newest progress matters
      held.add(r);
      return;
    }
    try {
      sink.accept(r);
    } catch (RuntimeException e) {
      log.warn("[{}] cannot send report: {}", taskId, e.toString());
    }
  }
}

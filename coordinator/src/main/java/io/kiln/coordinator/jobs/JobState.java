package io.kiln.coordinator.jobs;

import io.kiln.protocol.proto.JobEvent;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Everything the journal says about one training job: the fold of its {@link JobEvent}s.
 * Immutable; {@link #apply} returns the next state. Live telemetry (every step's progress, log
 * lines) is not here: it lives in {@code JobTelemetry} and only checkpoints reach the journal.
 *
 * <p>{@code workerIds} and {@code taskIds} are the job's current members in rank order (rank i runs
 * task {@code taskIds[i]} on worker {@code workerIds[i]}); an elastic job's members change with
 * {@code MembersAdded}, {@code MemberLost} and each {@code GroupFormed}.
 */
public record JobState(
    String jobId,
    JobStatus status,
    JobSpec spec,
    String submittedBy,
    long submittedAt,
    long startedAt,
    long endedAt,
    List<String> workerIds,
    List<String> taskIds,
    Progress lastCheckpoint,
    long lastCheckpointAt,
    Map<String, Double> metrics,
    String modelUri,
    String failureReason,
    String stopReason,
    int generation,
    /** The newest complete checkpoint of the job (empty if none). */
    String checkpointUri,
    List<HistoryEntry> history,
    /** Tasks ever started for this job (the next task is {@code <job>-r<tasksStarted>}). */
    int tasksStarted,
    /** Times the job went back to the queue to resume from its checkpoint. */
    int restarts) {

  /** One line of the job's history as users see it in {@code kiln describe}. */
  public record HistoryEntry(long at, String event, String detail) {}

  public static JobState empty(String jobId) {
    return new JobState(jobId, JobStatus.New, JobSpec.getDefaultInstance(), "", 0, 0, 0, List.of(), List.of(),
        null, 0, Map.of(), "", "", "", 0, "", List.of(), 0, 0);
  }

  /** The elastic bounds: at least {@code minWorkers()} ranks train, at most {@code maxWorkers()}. */
  public int minWorkers() {
    var r = spec.getResources();
    return Math.max(1, r.getMinWorkers() > 0 ? r.getMinWorkers() : r.getWorkers());
  }

  public int maxWorkers() {
    var r = spec.getResources();
    return Math.max(minWorkers(), r.getMaxWorkers() > 0 ? r.getMaxWorkers() : r.getWorkers());
  }

  public JobState apply(JobEvent e) {
    long at = e.getTimestampMs();
    Builder b = new Builder(this);
    switch (e.getKindCase()) {
      case SUBMITTED -> {
        b = new Builder(empty(jobId));
        b.status = JobStatus.Pending;
        b.spec = e.getSubmitted().getSpec();
        b.submittedBy = e.getSubmitted().getSubmittedBy();
        b.submittedAt = at;
        b.history(at, "Submitted", "by " + e.getSubmitted().getSubmittedBy());
      }
      case SCHEDULED -> {
        b.status = JobStatus.Scheduled;
        b.workerIds = List.copyOf(e.getScheduled().getWorkerIdsList());
        b.taskIds = List.copyOf(e.getScheduled().getTaskIdsList());
        b.tasksStarted = tasksStarted + e.getScheduled().getTaskIdsCount();
        b.history(at, "Scheduled", "on " + String.join(", ", e.getScheduled().getWorkerIdsList()));
      }
      case STARTED -> {
        b.status = JobStatus.Running;
        if (startedAt == 0) b.startedAt = at;
        b.history(at, "Started", "");
      }
      case PROGRESS -> {
        Progress p = e.getProgress().getProgress();
        b.lastCheckpoint = p;
        b.lastCheckpointAt = at;
        // Checkpoints are frequent: they update the state but only epoch ends enter the history.
        if (e.getProgress().getEpochEnd()) {
          b.history(at, "Checkpoint", "epoch " + p.getEpoch() + " step " + p.getStep() + String.format(" loss %.4f", p.getLoss()));
        }
      }
      case COMPLETED -> {
        b.status = JobStatus.Completed;
        b.endedAt = at;
        b.metrics = Map.copyOf(e.getCompleted().getMetricsMap());
        b.modelUri = e.getCompleted().getModelUri();
        b.history(at, "Completed", e.getCompleted().getModelUri());
      }
      case FAILED -> {
        b.status = JobStatus.Failed;
        b.endedAt = at;
        b.failureReason = e.getFailed().getReason();
        b.history(at, "Failed", e.getFailed().getReason());
      }
      case STOP_REQUESTED -> {
        b.status = JobStatus.Stopping;
        b.stopReason = e.getStopRequested().getReason();
        b.history(at, "StopRequested", e.getStopRequested().getReason());
      }
      case STOPPED -> {
        b.status = JobStatus.Stopped;
        b.endedAt = at;
        if (stopReason.isEmpty()) b.stopReason = e.getStopped().getReason();
        b.history(at, "Stopped", e.getStopped().getReason());
      }
      case CHECKPOINT_COMMITTED -> {
        var c = e.getCheckpointCommitted().getCheckpoint();
        b.checkpointUri = c.getUri();
        if (c.getEpochEnd()) b.history(at, "CheckpointCommitted", "epoch " + c.getEpoch() + " step " + c.getStep() + ": " + c.getUri());
      }
      case GROUP_FORMED -> {
        var f = e.getGroupFormed();
        var g = f.getGroup();
        b.generation = g.getGeneration();
        if (g.getTaskIdsCount() > 0) {
          b.taskIds = List.copyOf(g.getTaskIdsList());
          b.workerIds = List.copyOf(f.getWorkerIdsList());
        }
        b.history(at, "GroupFormed", "generation " + g.getGeneration() + ": " + g.getDataAddressesCount() + " ranks on "
            + String.join(", ", f.getWorkerIdsList()) + ", " + g.getBackend() + " backend" + f.getDetail());
      }
      case MEMBERS_ADDED -> {
        var m = e.getMembersAdded();
        List<String> w = new ArrayList<>(workerIds);
        w.addAll(m.getWorkerIdsList());
        List<String> t = new ArrayList<>(taskIds);
        t.addAll(m.getTaskIdsList());
        b.workerIds = List.copyOf(w);
        b.taskIds = List.copyOf(t);
        b.tasksStarted = tasksStarted + m.getTaskIdsCount();
        b.history(at, "MemberJoined", String.join(", ", m.getWorkerIdsList()) + " (task " + String.join(", ", m.getTaskIdsList())
            + ") joins at the next step boundary");
      }
      case MEMBER_LOST -> {
        var m = e.getMemberLost();
        int i = taskIds.indexOf(m.getTaskId());
        if (i >= 0) {
          List<String> w = new ArrayList<>(workerIds);
          List<String> t = new ArrayList<>(taskIds);
          w.remove(i);
          t.remove(i);
          b.workerIds = List.copyOf(w);
          b.taskIds = List.copyOf(t);
        }
        b.history(at, "MemberLeft", m.getWorkerId() + " (task " + m.getTaskId() + ") at step " + m.getStep() + ": " + m.getReason());
      }
      case RESTARTED -> {
        var r = e.getRestarted();
        b.status = JobStatus.Pending;
        b.workerIds = List.of();
        b.taskIds = List.of();
        b.restarts = restarts + 1;
        b.history(at, "Restarted", r.getReason() + (r.getResumeFrom().isEmpty() ? "; starting over (no checkpoint yet)"
            : "; resuming from " + r.getResumeFrom()));
      }
      case REATTACHED -> b.history(at, "Reattached", e.getReattached().getDetail());
      default -> throw new IllegalStateException("job " + jobId + ": event without a kind in the journal");
    }
    return b.build();
  }

  /** A mutable copy for {@link #apply}: each event changes a few fields. */
  private static final class Builder {
    String jobId;
    JobStatus status;
    JobSpec spec;
    String submittedBy;
    long submittedAt;
    long startedAt;
    long endedAt;
    List<String> workerIds;
    List<String> taskIds;
    Progress lastCheckpoint;
    long lastCheckpointAt;
    Map<String, Double> metrics;
    String modelUri;
    String failureReason;
    String stopReason;
    int generation;
    String checkpointUri;
    List<HistoryEntry> history;
    int tasksStarted;
    int restarts;

    Builder(JobState s) {
      jobId = s.jobId;
      status = s.status;
      spec = s.spec;
      submittedBy = s.submittedBy;
      submittedAt = s.submittedAt;
      startedAt = s.startedAt;
      endedAt = s.endedAt;
      workerIds = s.workerIds;
      taskIds = s.taskIds;
      lastCheckpoint = s.lastCheckpoint;
      lastCheckpointAt = s.lastCheckpointAt;
      metrics = s.metrics;
      modelUri = s.modelUri;
      failureReason = s.failureReason;
      stopReason = s.stopReason;
      generation = s.generation;
      checkpointUri = s.checkpointUri;
      history = s.history;
      tasksStarted = s.tasksStarted;
      restarts = s.restarts;
    }

    void history(long at, String event, String detail) {
      List<HistoryEntry> h = new ArrayList<>(history.size() + 1);
      h.addAll(history);
      h.add(new HistoryEntry(at, event, detail));
      history = List.copyOf(h);
    }

    JobState build() {
      return new JobState(jobId, status, spec, submittedBy, submittedAt, startedAt, endedAt, workerIds, taskIds,
          lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason, stopReason, generation, checkpointUri,
          history, tasksStarted, restarts);
    }
  }
}

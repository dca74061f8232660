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
    List<HistoryEntry> history) {

  /** One line of the job's history as users see it in {@code kiln describe}. */
  public record HistoryEntry(long at, String event, String detail) {}

  public static JobState empty(String jobId) {
    return new JobState(jobId, JobStatus.New, JobSpec.getDefaultInstance(), "", 0, 0, 0, List.of(), List.of(),
        null, 0, Map.of(), "", "", "", 0, "", List.of());
  }

  public JobState apply(JobEvent e) {
    long at = e.getTimestampMs();
    switch (e.getKindCase()) {
      case SUBMITTED:
        return new JobState(jobId, JobStatus.Pending, e.getSubmitted().getSpec(), e.getSubmitted().getSubmittedBy(), at,
            0, 0, List.of(), List.of(), null, 0, Map.of(), "", "", "", 0, "",
            append(at, "Submitted", "by " + e.getSubmitted().getSubmittedBy()));
      case SCHEDULED:
        return new JobState(jobId, JobStatus.Scheduled, spec, submittedBy, submittedAt, startedAt, endedAt,
            List.copyOf(e.getScheduled().getWorkerIdsList()), List.copyOf(e.getScheduled().getTaskIdsList()),
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason, stopReason, generation, checkpointUri,
            append(at, "Scheduled", "on " + String.join(", ", e.getScheduled().getWorkerIdsList())));
      case STARTED:
        return new JobState(jobId, JobStatus.Running, spec, submittedBy, submittedAt, at, endedAt, workerIds, taskIds,
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason, stopReason, generation, checkpointUri, append(at, "Started", ""));
      case PROGRESS: {
        Progress p = e.getProgress().getProgress();
        // Checkpoints are frequent: they update the state but only epoch ends enter the history.
        boolean epochEnd = e.getProgress().getEpochEnd();
        List<HistoryEntry> h = epochEnd
            ? append(at, "Checkpoint", "epoch " + p.getEpoch() + " step " + p.getStep() + String.format(" loss %.4f", p.getLoss()))
            : history;
        return new JobState(jobId, status, spec, submittedBy, submittedAt, startedAt, endedAt, workerIds, taskIds,
            p, at, metrics, modelUri, failureReason, stopReason, generation, checkpointUri, h);
      }
      case COMPLETED:
        return new JobState(jobId, JobStatus.Completed, spec, submittedBy, submittedAt, startedAt, at, workerIds,
            taskIds, lastCheckpoint, lastCheckpointAt, Map.copyOf(e.getCompleted().getMetricsMap()),
            e.getCompleted().getModelUri(), failureReason, stopReason, generation, checkpointUri,
            append(at, "Completed", e.getCompleted().getModelUri()));
      case FAILED:
        return new JobState(jobId, JobStatus.Failed, spec, submittedBy, submittedAt, startedAt, at, workerIds, taskIds,
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, e.getFailed().getReason(), stopReason, generation, checkpointUri,
            append(at, "Failed", e.getFailed().getReason()));
      case STOP_REQUESTED:
        return new JobState(jobId, JobStatus.Stopping, spec, submittedBy, submittedAt, startedAt, endedAt, workerIds,
            taskIds, lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason,
            e.getStopRequested().getReason(), generation, checkpointUri, append(at, "StopRequested", e.getStopRequested().getReason()));
      case STOPPED:
        return new JobState(jobId, JobStatus.Stopped, spec, submittedBy, submittedAt, startedAt, at, workerIds, taskIds,
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason,
            stopReason.isEmpty() ? e.getStopped().getReason() : stopReason, generation, checkpointUri,
            append(at, "Stopped", e.getStopped().getReason()));
      case CHECKPOINT_COMMITTED: {
        var c = e.getCheckpointCommitted().getCheckpoint();
        return new JobState(jobId, status, spec, submittedBy, submittedAt, startedAt, endedAt, workerIds, taskIds,
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason, stopReason, generation, c.getUri(),
            c.getEpochEnd() ? append(at, "CheckpointCommitted", "epoch " + c.getEpoch() + " step " + c.getStep() + ": " + c.getUri())
                : history);
      }
      case GROUP_FORMED: {
        var g = e.getGroupFormed().getGroup();
        return new JobState(jobId, status, spec, submittedBy, submittedAt, startedAt, endedAt, workerIds, taskIds,
            lastCheckpoint, lastCheckpointAt, metrics, modelUri, failureReason, stopReason, g.getGeneration(), checkpointUri,
            append(at, "GroupFormed", "generation " + g.getGeneration() + ": " + g.getDataAddressesCount() + " ranks on "
                + String.join(", ", e.getGroupFormed().getWorkerIdsList()) + ", " + g.getBackend() + " backend"));
      }
      default:
        throw new IllegalStateException("job " + jobId + ": event without a kind in the journal");
    }
  }

  private List<HistoryEntry> append(long at, String event, String detail) {
    List<HistoryEntry> h = new ArrayList<>(history.size() + 1);
    h.addAll(history);
    h.add(new HistoryEntry(at, event, detail));
    return List.copyOf(h);
  }
}

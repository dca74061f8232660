package io.kiln.coordinator.tuning;

import io.kiln.coordinator.tuning.strategy.TrialRecord;
import java.util.List;
import java.util.Map;

/**
 * One trial of a tuning job as the journal knows it. {@code jobId} is empty between the trial's
 * creation and its training job's submission (and after a retry). {@code objective} is the metric
 * as reported (not negated); NaN when the trial has none.
 */
public record TrialState(String trialId, Map<String, String> hyperparameters, int rung, String parentTrialId,
                         String jobId, Status status, double objective, Map<String, Double> metrics, String reason,
                         List<Double> curve, int attempts, String checkpointUri, long createdAt, long endedAt) {

  public enum Status {
    Pending, Running, Completed, Failed, Stopped, EarlyStopped;

    public boolean isFinal() {
      return this != Pending && this != Running;
    }
  }

  public boolean hasObjective() {
    return status == Status.Completed && !Double.isNaN(objective);
  }

  public TrialState withJob(String job) {
    return new TrialState(trialId, hyperparameters, rung, parentTrialId, job, Status.Running, objective, metrics, reason,
        curve, attempts, checkpointUri, createdAt, endedAt);
  }

  public TrialState retried(String why) {
    return new TrialState(trialId, hyperparameters, rung, parentTrialId, "", Status.Pending, Double.NaN, Map.of(), why,
        List.of(), attempts + 1, checkpointUri, createdAt, endedAt);
  }

  public TrialState finished(Status s, double obj, Map<String, Double> m, String why, List<Double> c, String ckpt, long at) {
    return new TrialState(trialId, hyperparameters, rung, parentTrialId, jobId, s, obj, Map.copyOf(m), why, List.copyOf(c),
        attempts, ckpt, createdAt, at);
  }

  /** The strategy's view: loss = objective, negated when the objective is maximized. */
  public TrialRecord record(boolean maximize) {
    TrialRecord.State s = switch (status) {
      case Pending, Running -> TrialRecord.State.RUNNING;
      case Completed -> TrialRecord.State.COMPLETED;
      case Failed -> TrialRecord.State.FAILED;
      case Stopped, EarlyStopped -> TrialRecord.State.STOPPED;
    };
    double loss = hasObjective() ? (maximize ? -objective : objective) : Double.NaN;
    return new TrialRecord(trialId, hyperparameters, s, loss, rung, parentTrialId, false, curve);
  }
}

package io.kiln.coordinator.tuning;

import io.kiln.protocol.proto.TrialFinished;
import io.kiln.protocol.proto.TuningEvent;
import io.kiln.protocol.proto.TuningSpec;
import io.kiln.protocol.proto.WarmStartTrial;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Everything the journal says about one tuning job: the fold of its {@link TuningEvent}s. Trials
 * keep their creation order. Immutable; {@link #apply} returns the next state.
 */
public record TuningState(String tuningJobId, TuningStatus status, TuningSpec spec, String submittedBy, long submittedAt,
                          long endedAt, String endReason, String stopReason, List<WarmStartTrial> warmStart,
                          Map<String, TrialState> trials) {

  public static TuningState empty(String id) {
    return new TuningState(id, TuningStatus.New, TuningSpec.getDefaultInstance(), "", 0, 0, "", "", List.of(), Map.of());
  }

  public boolean maximize() {
    return spec.getObjective().getType().equalsIgnoreCase("Maximize");
  }

  public List<TrialState> active() {
    return trials.values().stream().filter(t -> !t.status().isFinal()).toList();
  }

  /** Trials by objective, best first; trials without one after them, in creation order. */
  public List<TrialState> leaderboard() {
    Comparator<TrialState> byObjective = Comparator.comparingDouble(t -> maximize() ? -t.objective() : t.objective());
    List<TrialState> with = new ArrayList<>(trials.values().stream().filter(TrialState::hasObjective).sorted(byObjective).toList());
    trials.values().stream().filter(t -> !t.hasObjective()).forEach(with::add);
    return with;
  }

  public TuningState apply(TuningEvent e) {
    long at = e.getTimestampMs();
    switch (e.getKindCase()) {
      case SUBMITTED:
        return new TuningState(tuningJobId, TuningStatus.Running, e.getSubmitted().getSpec(), e.getSubmitted().getSubmittedBy(),
            at, 0, "", "", List.copyOf(e.getSubmitted().getWarmStartList()), Map.of());
      case TRIAL_CREATED: {
        var c = e.getTrialCreated();
        return withTrial(new TrialState(c.getTrialId(), Map.copyOf(c.getHyperparametersMap()), c.getRung(), c.getParentTrialId(),
            "", TrialState.Status.Pending, Double.NaN, Map.of(), "", List.of(), 1, "", at, 0));
      }
      case TRIAL_JOB_ASSIGNED:
        return withTrial(trial(e.getTrialJobAssigned().getTrialId()).withJob(e.getTrialJobAssigned().getJobId()));
      case TRIAL_RETRIED:
        return withTrial(trial(e.getTrialRetried().getTrialId()).retried(e.getTrialRetried().getReason()));
      case TRIAL_FINISHED: {
        TrialFinished f = e.getTrialFinished();
        TrialState.Status s = TrialState.Status.valueOf(f.getStatus());
        return withTrial(trial(f.getTrialId()).finished(s, f.getHasObjective() ? f.getObjective() : Double.NaN,
            f.getMetricsMap(), f.getReason(), f.getCurveList(), f.getCheckpointUri(), at));
      }
      case STOP_REQUESTED:
        return new TuningState(tuningJobId, TuningStatus.Stopping, spec, submittedBy, submittedAt, endedAt, endReason,
            e.getStopRequested().getReason(), warmStart, trials);
      case ENDED:
        return new TuningState(tuningJobId, TuningStatus.valueOf(e.getEnded().getStatus()), spec, submittedBy, submittedAt, at,
            e.getEnded().getReason(), stopReason, warmStart, trials);
      default:
        throw new IllegalStateException("tuning job " + tuningJobId + ": event without a kind in the journal");
    }
  }

  public TrialState trial(String id) {
    TrialState t = trials.get(id);
    if (t == null) throw new IllegalStateException("tuning job " + tuningJobId + ": no trial " + id + " in the journal");
    return t;
  }

  private TuningState withTrial(TrialState t) {
    Map<String, TrialState> m = new LinkedHashMap<>(trials);
    m.put(t.trialId(), t);
    return new TuningState(tuningJobId, status, spec, submittedBy, submittedAt, endedAt, endReason, stopReason, warmStart,
        java.util.Collections.unmodifiableMap(m));
  }
}

package io.kiln.coordinator.tuning.strategy;

import java.util.List;
import java.util.Map;

/**
 * What a strategy knows of one trial. {@code loss} is the objective turned into "lower is better"
 * (a maximized metric negated) and NaN until the trial has one; {@code curve} holds its intermediate
 * values per epoch in the same orientation. Warm-start trials come from earlier tuning jobs.
 */
public record TrialRecord(String id, Map<String, String> params, State state, double loss, int rung, String parentId,
                          boolean warm, List<Double> curve) {

  public enum State { RUNNING, COMPLETED, FAILED, STOPPED }

  public TrialRecord {
    params = Map.copyOf(params);
    curve = List.copyOf(curve);
    parentId = parentId == null ? "" : parentId;
  }

  public boolean hasLoss() {
    return state == State.COMPLETED && !Double.isNaN(loss);
  }

  public static TrialRecord completed(String id, Map<String, String> params, double loss) {
    return new TrialRecord(id, params, State.COMPLETED, loss, 0, "", false, List.of());
  }
}

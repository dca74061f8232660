package io.kiln.coordinator.tuning.strategy;

import java.util.Map;

/**
 * The next trial to run: its hyperparameters (including a resource such as {@code epochs} for
 * Hyperband), its rung, and for a promotion the trial it continues ({@code ""} for a fresh one).
 */
public record Suggestion(Map<String, String> params, int rung, String parentId) {
  public Suggestion {
    params = Map.copyOf(params);
    parentId = parentId == null ? "" : parentId;
  }

  public static Suggestion fresh(Map<String, String> params) {
    return new Suggestion(params, 0, "");
  }
}

package io.kiln.coordinator.tuning.strategy;

import java.util.List;
import java.util.Optional;

/**
 * Chooses the next trial from the trials so far. A pure function of its settings (seed included)
 * and the records it is given: a tuning job that restarts asks again with the same records and gets
 * the same answer, so nothing about a strategy needs to be journaled beyond the trials themselves.
 */
public interface SearchStrategy {

  /**
   * The next trial to start, or empty when the strategy has nothing to start now: exhausted (grid)
   * or waiting for running trials (Hyperband rungs). {@code trials} includes running and warm-start trials.
   */
  Optional<Suggestion> suggest(List<TrialRecord> trials);

  /** Whether the strategy will never suggest again (e.g. the grid is done), whatever finishes. */
  default boolean exhausted(List<TrialRecord> trials) {
    return false;
  }

  /** Trials this job started itself (not warm-start ones). */
  static long ownTrials(List<TrialRecord> trials) {
    return trials.stream().filter(t -> !t.warm()).count();
  }

  /** A generator for the {@code index}-th draw of a job seeded with {@code seed}: independent of other draws. */
  static java.util.Random random(long seed, long index) {
    long z = seed * 0x9E3779B97F4A7C15L + index * 0xBF58476D1CE4E5B9L + 0x94D049BB133111EBL;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return new java.util.Random(z ^ (z >>> 31));
  }
}

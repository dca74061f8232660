package io.kiln.coordinator.tuning.strategy;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Every combination of the ranges' grid values, in order; points already tried (by this job or a
 * warm-start parent) are skipped. Numeric ranges contribute {@code points} evenly spaced values.
 */
public record GridSearch(SearchSpace space, int points) implements SearchStrategy {
  @Override
  public Optional<Suggestion> suggest(List<TrialRecord> trials) {
    Set<Map<String, String>> tried = new HashSet<>();
    for (TrialRecord t : trials) tried.add(t.params());
    for (Map<String, String> p : space.grid(points)) {
      if (!tried.contains(Map.copyOf(p))) return Optional.of(Suggestion.fresh(p));
    }
    return Optional.empty();
  }

  @Override
  public boolean exhausted(List<TrialRecord> trials) {
    return suggest(trials).isEmpty();
  }

  public int size() {
    return space.grid(points).size();
  }
}

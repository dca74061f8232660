package io.kiln.coordinator.tuning.strategy;

import java.util.List;
import java.util.Optional;

/** Independent uniform draws (on each range's scale); the n-th trial's draw depends only on seed and n. */
public record RandomSearch(SearchSpace space, long seed) implements SearchStrategy {
  @Override
  public Optional<Suggestion> suggest(List<TrialRecord> trials) {
    return Optional.of(Suggestion.fresh(space.sample(SearchStrategy.random(seed, SearchStrategy.ownTrials(trials)))));
  }
}

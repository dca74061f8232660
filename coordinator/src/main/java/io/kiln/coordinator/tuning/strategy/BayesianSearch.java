package io.kiln.coordinator.tuning.strategy;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * Bayesian optimization: a {@link GaussianProcess} over the finished trials, the next trial where
 * its expected improvement is largest. The first {@code initialRandom} trials are random draws.
 * Running trials count as if they had returned the best value so far ("constant liar"), so parallel
 * trials spread out instead of all landing on the same point.
 */
public record BayesianSearch(SearchSpace space, long seed, int initialRandom, int candidates) implements SearchStrategy {

  public BayesianSearch(SearchSpace space, long seed) {
    this(space, seed, Math.max(3, Math.min(10, 2 * space.ranges().size() + 1)), 2000);
  }

  @Override
  public Optional<Suggestion> suggest(List<TrialRecord> trials) {
    long index = SearchStrategy.ownTrials(trials);
    Random random = SearchStrategy.random(seed, index);
    List<TrialRecord> done = trials.stream().filter(t -> t.hasLoss() && space.covers(t.params())).toList();
    if (done.size() < initialRandom && index < initialRandom || done.isEmpty()) {
      return Optional.of(Suggestion.fresh(space.sample(random)));
    }
    double best = done.stream().mapToDouble(TrialRecord::loss).min().orElseThrow();
    List<double[]> xs = new ArrayList<>();
    List<Double> ys = new ArrayList<>();
    for (TrialRecord t : trials) {
      if (!space.covers(t.params())) continue;
      if (t.hasLoss()) {
        xs.add(space.encode(t.params()));
        ys.add(t.loss());
      } else if (t.state() == TrialRecord.State.RUNNING) {
        xs.add(space.encode(t.params()));
        ys.add(best);
      }
    }
    GaussianProcess gp = GaussianProcess.fit(xs.toArray(double[][]::new), ys.stream().mapToDouble(Double::doubleValue).toArray());
    // Candidates: uniform draws for exploration, and steps around the best trials for refinement.
    List<Map<String, String>> pool = new ArrayList<>();
    for (int i = 0; i < candidates; i++) pool.add(space.sample(random));
    List<TrialRecord> top = done.stream().sorted(Comparator.comparingDouble(TrialRecord::loss)).limit(3).toList();
    for (TrialRecord t : top) {
      for (int i = 0; i < candidates / 10; i++) pool.add(space.neighbour(t.params(), random, i % 2 == 0 ? 0.05 : 0.15));
    }
    Map<String, String> chosen = null;
    double bestEi = Double.NEGATIVE_INFINITY;
    for (Map<String, String> c : pool) {
      double ei = gp.expectedImprovement(space.encode(c), best);
      if (ei > bestEi) {
        bestEi = ei;
        chosen = c;
      }
    }
    return Optional.of(Suggestion.fresh(chosen));
  }
}

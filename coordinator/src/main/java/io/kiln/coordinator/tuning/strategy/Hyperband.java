package io.kiln.coordinator.tuning.strategy;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Asynchronous successive halving (ASHA, Li et al. 2020), the asynchronous form of Hyperband's
 * inner loop. Rung k trains with resource {@code minResource * eta^k} (capped at {@code maxResource})
 * of the hyperparameter {@code resource} (e.g. epochs). Whenever a slot is free, the best
 * unpromoted trial in the top 1/eta of a rung's finished trials moves up one rung (highest rung
 * first); otherwise a fresh random configuration starts at rung 0. No rung ever waits for a full
 * cohort, which is why it keeps every slot busy.
 */
public record Hyperband(SearchSpace space, long seed, String resource, long minResource, long maxResource, int eta)
    implements SearchStrategy {

  public Hyperband {
    if (minResource < 1 || maxResource < minResource) {
      throw new IllegalArgumentException("hyperband: need 1 <= minResource <= maxResource");
    }
    if (eta < 2) throw new IllegalArgumentException("hyperband: eta must be at least 2");
  }

  /** The resource of each rung: minResource, minResource*eta, ..., ending at maxResource. */
  public List<Long> rungs() {
    List<Long> r = new ArrayList<>();
    for (long v = minResource; v < maxResource; v *= eta) r.add(v);
    r.add(maxResource);
    return r;
  }

  @Override
  public Optional<Suggestion> suggest(List<TrialRecord> trials) {
    List<Long> rungs = rungs();
    Set<String> promoted = new HashSet<>();
    for (TrialRecord t : trials) if (!t.parentId().isEmpty()) promoted.add(t.parentId());
    for (int k = rungs.size() - 2; k >= 0; k--) {
      Optional<TrialRecord> p = promotable(trials, k, promoted);
      if (p.isPresent()) {
        Map<String, String> params = new LinkedHashMap<>(p.get().params());
        params.put(resource, Long.toString(rungs.get(k + 1)));
        return Optional.of(new Suggestion(params, k + 1, p.get().id()));
      }
    }
    long fresh = trials.stream().filter(t -> !t.warm() && t.rung() == 0).count();
    Map<String, String> params = new LinkedHashMap<>(space.sample(SearchStrategy.random(seed, fresh)));
    params.put(resource, Long.toString(rungs.get(0)));
    return Optional.of(new Suggestion(params, 0, ""));
  }

  /** The best trial of rung {@code k} that is in its rung's top 1/eta and not yet promoted. */
  Optional<TrialRecord> promotable(List<TrialRecord> trials, int k, Set<String> promoted) {
    List<TrialRecord> finished = trials.stream().filter(t -> !t.warm() && t.rung() == k && t.hasLoss())
        .sorted(Comparator.comparingDouble(TrialRecord::loss).thenComparing(TrialRecord::id)).toList();
    int top = finished.size() / eta;
    for (int i = 0; i < top; i++) {
      if (!promoted.contains(finished.get(i).id())) return Optional.of(finished.get(i));
    }
    return Optional.empty();
  }
}

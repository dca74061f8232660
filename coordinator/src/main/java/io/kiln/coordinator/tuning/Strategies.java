package io.kiln.coordinator.tuning;

import io.kiln.coordinator.tuning.strategy.BayesianSearch;
import io.kiln.coordinator.tuning.strategy.GridSearch;
import io.kiln.coordinator.tuning.strategy.Hyperband;
import io.kiln.coordinator.tuning.strategy.ParameterRange;
import io.kiln.coordinator.tuning.strategy.RandomSearch;
import io.kiln.coordinator.tuning.strategy.SearchSpace;
import io.kiln.coordinator.tuning.strategy.SearchStrategy;
import io.kiln.coordinator.tuning.strategy.TrialRecord;
import io.kiln.protocol.proto.ParameterRangeSpec;
import io.kiln.protocol.proto.TuningSpec;
import io.kiln.protocol.proto.WarmStartTrial;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Turns a validated {@link TuningSpec} into the pure strategy objects, and a state into their records. */
public final class Strategies {
  public static final List<String> NAMES = List.of("random", "grid", "bayesian", "hyperband");
  static final int DEFAULT_GRID_POINTS = 5;
  static final int DEFAULT_ETA = 3;

  private Strategies() {}

  public static SearchSpace space(TuningSpec spec) {
    List<ParameterRange> ranges = new ArrayList<>();
    for (ParameterRangeSpec p : spec.getParametersList()) ranges.add(range(p));
    return new SearchSpace(ranges);
  }

  static ParameterRange range(ParameterRangeSpec p) {
    ParameterRange.Scale scale = p.getScale().equalsIgnoreCase("log") ? ParameterRange.Scale.LOG : ParameterRange.Scale.LINEAR;
    return switch (p.getType().toLowerCase(Locale.ROOT)) {
      case "continuous" -> new ParameterRange.Continuous(p.getName(), p.getMin(), p.getMax(), scale);
      case "integer" -> new ParameterRange.IntegerRange(p.getName(), (long) p.getMin(), (long) p.getMax(), scale);
      case "categorical" -> new ParameterRange.Categorical(p.getName(), p.getValuesList());
      default -> throw new IllegalArgumentException(p.getName() + ": unknown range type '" + p.getType() + "'");
    };
  }

  public static SearchStrategy strategy(TuningSpec spec) {
    SearchSpace space = space(spec);
    return switch (spec.getStrategy().toLowerCase(Locale.ROOT)) {
      case "random" -> new RandomSearch(space, spec.getSeed());
      case "grid" -> new GridSearch(space, gridPoints(spec));
      case "bayesian" -> new BayesianSearch(space, spec.getSeed());
      case "hyperband" -> hyperband(spec, space);
      default -> throw new IllegalArgumentException("unknown strategy '" + spec.getStrategy() + "'");
    };
  }

  static Hyperband hyperband(TuningSpec spec, SearchSpace space) {
    var h = spec.getHyperband();
    return new Hyperband(space, spec.getSeed(), resource(spec), h.getMinResource(), h.getMaxResource(),
        h.getEta() == 0 ? DEFAULT_ETA : h.getEta());
  }

  static String resource(TuningSpec spec) {
    return spec.getHyperband().getResource().isEmpty() ? "epochs" : spec.getHyperband().getResource();
  }

  static int gridPoints(TuningSpec spec) {
    return spec.getGridPoints() == 0 ? DEFAULT_GRID_POINTS : spec.getGridPoints();
  }

  /** What the strategy sees: warm-start trials first, then this job's own. */
  public static List<TrialRecord> records(TuningState s) {
    boolean max = s.maximize();
    List<TrialRecord> out = new ArrayList<>();
    for (WarmStartTrial w : s.warmStart()) {
      out.add(new TrialRecord(w.getTuningJobId() + "/" + w.getTrialId(), w.getHyperparametersMap(), TrialRecord.State.COMPLETED,
          max ? -w.getObjective() : w.getObjective(), 0, "", true, List.of()));
    }
    for (TrialState t : s.trials().values()) out.add(t.record(max));
    return out;
  }
}

package io.kiln.coordinator.tuning.strategy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The tunable hyperparameters of a tuning job. Encodes a configuration as a point for model-based
 * strategies: numeric ranges as one coordinate in [0, 1], categorical ones one-hot (so that no
 * order between categories is invented).
 */
public record SearchSpace(List<ParameterRange> ranges) {
  public SearchSpace {
    ranges = List.copyOf(ranges);
  }

  public Map<String, String> sample(Random random) {
    Map<String, String> p = new LinkedHashMap<>();
    for (ParameterRange r : ranges) p.put(r.name(), r.sample(random));
    return p;
  }

  /** A configuration near {@code base}: numeric values moved by a normal step of {@code sigma} in unit space. */
  public Map<String, String> neighbour(Map<String, String> base, Random random, double sigma) {
    Map<String, String> p = new LinkedHashMap<>();
    for (ParameterRange r : ranges) {
      String v = base.get(r.name());
      if (v == null || !contains(r, v)) {
        p.put(r.name(), r.sample(random));
      } else if (r instanceof ParameterRange.Categorical c) {
        p.put(r.name(), random.nextDouble() < 0.2 ? c.sample(random) : v);
      } else {
        p.put(r.name(), r.fromUnit(r.toUnit(v) + sigma * random.nextGaussian()));
      }
    }
    return p;
  }

  public int dimensions() {
    int d = 0;
    for (ParameterRange r : ranges) d += r instanceof ParameterRange.Categorical c ? c.values().size() : 1;
    return d;
  }

  public double[] encode(Map<String, String> params) {
    double[] x = new double[dimensions()];
    int i = 0;
    for (ParameterRange r : ranges) {
      String v = params.get(r.name());
      if (r instanceof ParameterRange.Categorical c) {
        int idx = v == null ? -1 : c.categoricalIndex(v);
        if (idx >= 0) x[i + idx] = 1;
        i += c.values().size();
      } else {
        x[i++] = v == null || !contains(r, v) ? 0.5 : r.toUnit(v);
      }
    }
    return x;
  }

  /** Whether every range has a value in {@code params} that it can read (warm-start trials may not). */
  public boolean covers(Map<String, String> params) {
    for (ParameterRange r : ranges) {
      String v = params.get(r.name());
      if (v == null || !contains(r, v)) return false;
    }
    return true;
  }

  /** The grid: the cartesian product of each range's grid values, the last range varying fastest. */
  public List<Map<String, String>> grid(int points) {
    List<Map<String, String>> out = new ArrayList<>();
    out.add(new LinkedHashMap<>());
    for (ParameterRange r : ranges) {
      List<Map<String, String>> next = new ArrayList<>();
      for (Map<String, String> prefix : out) {
        for (String v : r.grid(points)) {
          Map<String, String> m = new LinkedHashMap<>(prefix);
          m.put(r.name(), v);
          next.add(m);
        }
      }
      out = next;
    }
    return out;
  }

  private static boolean contains(ParameterRange r, String v) {
    try {
      if (r instanceof ParameterRange.Categorical c) return c.categoricalIndex(v) >= 0;
      if (r instanceof ParameterRange.IntegerRange) Long.parseLong(v);
      else Double.parseDouble(v);
      return true;
    } catch (NumberFormatException e) {
      return false;
    }
  }
}

package io.kiln.coordinator.tuning.strategy;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * One tunable hyperparameter and the values it may take. Values travel as strings (job
 * hyperparameters are strings); {@link #toUnit} and {@link #fromUnit} map them to and from [0, 1]
 * (on a log scale where asked) so that model-based strategies work in a unit cube.
 */
public sealed interface ParameterRange {

  enum Scale { LINEAR, LOG }

  String name();

  /** A value drawn uniformly (on the range's scale). */
  String sample(Random random);

  /** The value's position in [0, 1] (categorical ranges use {@link #categoricalIndex} instead). */
  double toUnit(String value);

  String fromUnit(double u);

  /** Values for grid search: {@code points} evenly spaced for numeric ranges, every value for categories. */
  List<String> grid(int points);

  /** A continuous range [min, max]; a log scale needs min > 0. */
  record Continuous(String name, double min, double max, Scale scale) implements ParameterRange {
    public Continuous {
      if (!(min <= max)) throw new IllegalArgumentException(name + ": min " + min + " must not exceed max " + max);
      if (scale == Scale.LOG && !(min > 0)) throw new IllegalArgumentException(name + ": a log scale needs min > 0");
    }

    @Override
    public String sample(Random random) {
      return fromUnit(random.nextDouble());
    }

    @Override
    public double toUnit(String value) {
      double v = Double.parseDouble(value);
      if (max == min) return 0.5;
      double u = scale == Scale.LOG ? (Math.log(v) - Math.log(min)) / (Math.log(max) - Math.log(min)) : (v - min) / (max - min);
      return clamp(u);
    }

    @Override
    public String fromUnit(double u) {
      u = clamp(u);
      double v = scale == Scale.LOG ? Math.exp(Math.log(min) + u * (Math.log(max) - Math.log(min))) : min + u * (max - min);
      return format(Math.min(max, Math.max(min, v)));
    }

    @Override
    public List<String> grid(int points) {
      List<String> out = new ArrayList<>();
      if (points <= 1 || min == max) return List.of(fromUnit(points <= 1 ? 0.5 : 0));
      for (int i = 0; i < points; i++) out.add(fromUnit(i / (double) (points - 1)));
      return out;
    }
  }

  /** Integers in [min, max]; a log scale needs min >= 1. */
  record IntegerRange(String name, long min, long max, Scale scale) implements ParameterRange {
    public IntegerRange {
      if (min > max) throw new IllegalArgumentException(name + ": min " + min + " must not exceed max " + max);
      if (scale == Scale.LOG && min < 1) throw new IllegalArgumentException(name + ": a log scale needs min >= 1");
    }

    @Override
    public String sample(Random random) {
      if (scale == Scale.LINEAR) return Long.toString(min + (long) Math.floor(random.nextDouble() * (max - min + 1)));
      return fromUnit(random.nextDouble());
    }

    @Override
    public double toUnit(String value) {
      long v = Long.parseLong(value);
      if (max == min) return 0.5;
      double u = scale == Scale.LOG ? (Math.log(v) - Math.log(min)) / (Math.log(max) - Math.log(min))
          : (v - min) / (double) (max - min);
      return clamp(u);
    }

    @Override
    public String fromUnit(double u) {
      u = clamp(u);
      double v = scale == Scale.LOG ? Math.exp(Math.log(min) + u * (Math.log(max) - Math.log(min))) : min + u * (max - min);
      return Long.toString(Math.min(max, Math.max(min, Math.round(v))));
    }

    @Override
    public List<String> grid(int points) {
      List<String> out = new ArrayList<>();
      if (max - min + 1 <= Math.max(points, 1)) {
        for (long v = min; v <= max; v++) out.add(Long.toString(v));
        return out;
      }
      for (int i = 0; i < points; i++) {
        String v = fromUnit(points == 1 ? 0.5 : i / (double) (points - 1));
        if (!out.contains(v)) out.add(v);
      }
      return out;
    }
  }

  /** One of a list of values. */
  record Categorical(String name, List<String> values) implements ParameterRange {
    public Categorical {
      if (values.isEmpty()) throw new IllegalArgumentException(name + ": needs at least one value");
      values = List.copyOf(values);
    }

    @Override
    public String sample(Random random) {
      return values.get(random.nextInt(values.size()));
    }

    @Override
    public double toUnit(String value) {
      return values.size() == 1 ? 0.5 : categoricalIndex(value) / (double) (values.size() - 1);
    }

    @Override
    public String fromUnit(double u) {
      return values.get((int) Math.round(clamp(u) * (values.size() - 1)));
    }

    @Override
    public List<String> grid(int points) {
      return values;
    }

    /** The value's index, or -1 if it is not one of the values (e.g. from a warm-start parent). */
    public int categoricalIndex(String value) {
      return values.indexOf(value);
    }
  }

  private static double clamp(double u) {
    return Math.max(0, Math.min(1, u));
  }

  /** Shortest round-trip form, so that a value reads back as the same double. */
  static String format(double v) {
    if (v == Math.rint(v) && Math.abs(v) < 1e15) return String.format(Locale.ROOT, "%.1f", v);
    return Double.toString(v);
  }
}

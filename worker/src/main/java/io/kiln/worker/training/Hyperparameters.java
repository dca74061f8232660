package io.kiln.worker.training;

import java.util.Map;

/** Parsing of SageMaker-style string hyperparameters with messages that name the bad one. */
public final class Hyperparameters {
  private Hyperparameters() {}

  public static int intValue(Map<String, String> hp, String key, int def, int min, int max) {
    String v = hp.get(key);
    if (v == null || v.isBlank()) return def;
    long n;
    try {
      n = Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      // Accept "3.0" as the CLI may send JSON numbers as strings.
      try {
        double d = Double.parseDouble(v.trim());
        if (d != Math.rint(d)) throw new NumberFormatException();
        n = (long) d;
      } catch (NumberFormatException e2) {
        throw new IllegalArgumentException("hyperparameter " + key + ": '" + v + "' is not an integer");
      }
    }
    if (n < min || n > max) {
      throw new IllegalArgumentException("hyperparameter " + key + ": " + n + " outside " + min + ".." + max);
    }
    return (int) n;
  }

  public static long longValue(Map<String, String> hp, String key, long def) {
    String v = hp.get(key);
    if (v == null || v.isBlank()) return def;
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("hyperparameter " + key + ": '" + v + "' is not an integer");
    }
  }

  public static float floatValue(Map<String, String> hp, String key, float def, float minExclusive, float max) {
    String v = hp.get(key);
    if (v == null || v.isBlank()) return def;
    float f;
    try {
      f = Float.parseFloat(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("hyperparameter " + key + ": '" + v + "' is not a number");
    }
    if (!(f > minExclusive) || f > max || Float.isNaN(f)) {
      throw new IllegalArgumentException("hyperparameter " + key + ": " + v + " outside (" + minExclusive + ", " + max + "]");
    }
    return f;
  }
}

package io.kiln.worker.script;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The script settings of a job spec with algorithm {@code script}. They travel in the spec's
 * hyperparameters under reserved keys, as SageMaker's SDK sends them:
 *
 * <ul>
 *   <li>{@code sagemaker_program}: the entry point, relative to the source directory (required);
 *   <li>{@code sagemaker_submit_directory}: the packaged source, a {@code .tar.gz} (or a directory)
 *       as an absolute path or {@code file:} URI (optional: without it the entry point must be an
 *       absolute path on the worker);
 *   <li>{@code kiln_metric_definitions}: JSON list of {@code {"Name", "Regex"}} (optional).
 * </ul>
 *
 * Every key starting with {@code sagemaker_} or {@code kiln_} is reserved: the script never sees
 * it among its hyperparameters. Values that the SageMaker SDK JSON-encodes ({@code "\"train.py\""})
 * are decoded.
 */
public record ScriptSpec(String program, String submitDirectory, List<MetricDefinition> metrics,
    SortedMap<String, String> hyperparameters, long maxOutputMb, long maxLogMb) {
  public static final String ALGORITHM = "script";
  public static final String PROGRAM = "sagemaker_program";
  public static final String SUBMIT_DIRECTORY = "sagemaker_submit_directory";
  public static final String METRIC_DEFINITIONS = "kiln_metric_definitions";
  /** Limits of what the task writes, overriding the worker's defaults (whole MB, positive). */
  public static final String MAX_OUTPUT_MB = "kiln_max_output_mb";
  public static final String MAX_LOG_MB = "kiln_max_log_mb";
  public static final List<String> RESERVED_PREFIXES = List.of("sagemaker_", "kiln_");

  public ScriptSpec {
    metrics = List.copyOf(metrics);
    hyperparameters = Collections.unmodifiableSortedMap(new TreeMap<>(hyperparameters));
  }

  public static boolean isReserved(String key) {
    for (String p : RESERVED_PREFIXES) {
      if (key.startsWith(p)) return true;
    }
    return false;
  }

  /** Reads the reserved keys; throws {@link IllegalArgumentException} naming the bad one. */
  public static ScriptSpec fromSpec(JobSpec spec) {
    Map<String, String> hp = spec.getHyperparametersMap();
    String program = unquote(hp.getOrDefault(PROGRAM, "")).trim();
    if (program.isEmpty()) {
      throw new IllegalArgumentException("no entry point: hyperparameters." + PROGRAM
          + " is required for algorithm 'script' (kiln train --entry-point train.py)");
    }
    String submit = unquote(hp.getOrDefault(SUBMIT_DIRECTORY, "")).trim();
    List<MetricDefinition> metrics;
    try {
      metrics = MetricDefinition.parseList(unquote(hp.getOrDefault(METRIC_DEFINITIONS, "")));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("hyperparameters." + METRIC_DEFINITIONS + ": " + e.getMessage());
    }
    SortedMap<String, String> user = new TreeMap<>();
    hp.forEach((k, v) -> {
      if (!isReserved(k)) user.put(k, v);
    });
    return new ScriptSpec(program, submit, metrics, user, megabytes(hp, MAX_OUTPUT_MB), megabytes(hp, MAX_LOG_MB));
  }

  /** A positive whole number of MB under {@code key}, 0 when absent; throws naming the key otherwise. */
  static long megabytes(Map<String, String> hp, String key) {
    String v = unquote(hp.getOrDefault(key, "")).trim();
    if (v.isEmpty()) return 0;
    try {
      long n = Long.parseLong(v);
      if (n > 0 && n < (1L << 40)) return n;
    } catch (NumberFormatException ignored) {
      // reported below
    }
    throw new IllegalArgumentException("hyperparameters." + key + ": '" + v + "' must be a positive whole number of MB");
  }

  /** {@code "\"x\""} (a JSON string, as the SageMaker SDK writes reserved values) becomes {@code x}. */
  static String unquote(String v) {
    String t = v.trim();
    if (t.length() >= 2 && t.startsWith("\"") && t.endsWith("\"")) {
      try {
        JsonElement e = JsonParser.parseString(t);
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isString()) return e.getAsString();
      } catch (RuntimeException ignored) {
        // not JSON: keep it
      }
    }
    return v;
  }

}

package io.kiln.worker.algorithms.xgboost;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The {@code xgboost} algorithm's hyperparameters: SageMaker's names and defaults (see
 * docs/algorithms.md), checked at the start of a task. {@link #parse} collects every problem (unknown
 * names, out-of-range values) into one {@link IllegalArgumentException}, so a user fixes a spec in
 * one round.
 */
public final class XGBoostParams {

  /** Kiln's own hyperparameters that every built-in algorithm accepts (not passed to XGBoost). */
  public static final Set<String> KILN_GENERIC = Set.of("content_type", "max_rows", "_tuning_objective_metric");

  /** Objectives XGBoost 3 knows (the names SageMaker passes through). */
  public static final Set<String> OBJECTIVES = new TreeSet<>(List.of(
      "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror", "reg:absoluteerror",
      "reg:quantileerror", "reg:gamma", "reg:tweedie", "reg:linear",
      "binary:logistic", "binary:logitraw", "binary:hinge",
      "count:poisson", "survival:cox", "survival:aft",
      "multi:softmax", "multi:softprob",
      "rank:ndcg", "rank:pairwise", "rank:map"));

  /** How a parameter is checked. */
  private enum Kind { INT, NUMBER, STRING, BOOL01 }

  private record Spec(Kind kind, double min, boolean minOpen, double max, boolean maxOpen, Set<String> choices) {}

  /** Everything else XGBoost reads, by SageMaker's name; passed through to XGBoost after the check. */
  private static final Map<String, Spec> PASS_THROUGH = new LinkedHashMap<>();
  /** Read by the runner, not passed as XGBoost parameters. */
  private static final Map<String, Spec> RUNNER = new LinkedHashMap<>();

  static {
    num(PASS_THROUGH, "eta", 0, false, 1, false);
    integer(PASS_THROUGH, "max_depth", 0, 1024);
    num(PASS_THROUGH, "min_child_weight", 0, false, Double.MAX_VALUE, false);
    num(PASS_THROUGH, "subsample", 0, true, 1, false);
    num(PASS_THROUGH, "colsample_bytree", 0, true, 1, false);
    num(PASS_THROUGH, "colsample_bylevel", 0, true, 1, false);
    num(PASS_THROUGH, "colsample_bynode", 0, true, 1, false);
    num(PASS_THROUGH, "gamma", 0, false, Double.MAX_VALUE, false);
    num(PASS_THROUGH, "lambda", 0, false, Double.MAX_VALUE, false);
    num(PASS_THROUGH, "alpha", 0, false, Double.MAX_VALUE, false);
    choice(PASS_THROUGH, "tree_method", "auto", "exact", "approx", "hist");
    integer(PASS_THROUGH, "nthread", 1, 4096);
    integer(PASS_THROUGH, "seed", Integer.MIN_VALUE, Integer.MAX_VALUE);
    choice(PASS_THROUGH, "booster", "gbtree", "gblinear", "dart");
    num(PASS_THROUGH, "base_score", -Double.MAX_VALUE, false, Double.MAX_VALUE, false);
    choice(PASS_THROUGH, "grow_policy", "depthwise", "lossguide");
    integer(PASS_THROUGH, "max_leaves", 0, Integer.MAX_VALUE);
    integer(PASS_THROUGH, "max_bin", 2, Integer.MAX_VALUE);
    num(PASS_THROUGH, "max_delta_step", 0, false, Double.MAX_VALUE, false);
    num(PASS_THROUGH, "scale_pos_weight", 0, true, Double.MAX_VALUE, false);
    integer(PASS_THROUGH, "num_parallel_tree", 1, 100000);
    str(PASS_THROUGH, "monotone_constraints");
    str(PASS_THROUGH, "interaction_constraints");
    str(PASS_THROUGH, "updater");
    choice(PASS_THROUGH, "process_type", "default", "update");
    bool(PASS_THROUGH, "refresh_leaf");
    choice(PASS_THROUGH, "sample_type", "uniform", "weighted");
    choice(PASS_THROUGH, "normalize_type", "tree", "forest");
    num(PASS_THROUGH, "rate_drop", 0, false, 1, false);
    bool(PASS_THROUGH, "one_drop");
    num(PASS_THROUGH, "skip_drop", 0, false, 1, false);
    num(PASS_THROUGH, "tweedie_variance_power", 1, true, 2, true);
    num(PASS_THROUGH, "huber_slope", 0, true, Double.MAX_VALUE, false);
    str(PASS_THROUGH, "quantile_alpha");
    choice(PASS_THROUGH, "aft_loss_distribution", "normal", "logistic", "extreme");
    num(PASS_THROUGH, "aft_loss_distribution_scale", 0, true, Double.MAX_VALUE, false);
    choice(PASS_THROUGH, "lambdarank_pair_method", "mean", "topk");
    integer(PASS_THROUGH, "lambdarank_num_pair_per_sample", 1, Integer.MAX_VALUE);
    integer(PASS_THROUGH, "max_cat_to_onehot", 1, Integer.MAX_VALUE);
    choice(PASS_THROUGH, "multi_strategy", "one_output_per_tree", "multi_output_tree");
    integer(PASS_THROUGH, "verbosity", 0, 3);

    integer(RUNNER, "num_round", 1, 1_000_000);
    integer(RUNNER, "num_class", 2, 1_000_000);
    str(RUNNER, "objective");
    str(RUNNER, "eval_metric");
    integer(RUNNER, "early_stopping_rounds", 1, 1_000_000);
    bool(RUNNER, "csv_weights");
    integer(RUNNER, "max_rows", 1, Integer.MAX_VALUE);
    str(RUNNER, "content_type");
    str(RUNNER, "_tuning_objective_metric");
  }

  /** Defaults where Kiln sets a value (SageMaker's; {@code tree_method} hist; {@code nthread} = the task's CPUs). */
  public static final int DEFAULT_NUM_ROUND = 100;
  public static final String DEFAULT_OBJECTIVE = "reg:squarederror";
  public static final String DEFAULT_OBJECTIVE_IDX = "multi:softprob";

  private final Map<String, String> given;
  private final Map<String, String> xgb;
  private final int numRound;
  private final Integer numClass;
  private final String objective;
  private final boolean objectiveGiven;
  private final List<String> evalMetrics;
  private final int earlyStoppingRounds;
  private final boolean csvWeights;
  private final int maxRows;
  private final String contentType;

  private XGBoostParams(Map<String, String> given, Map<String, String> xgb, int numRound, Integer numClass,
      String objective, boolean objectiveGiven, List<String> evalMetrics, int earlyStoppingRounds, boolean csvWeights,
      int maxRows, String contentType) {
    this.given = given;
    this.xgb = xgb;
    this.numRound = numRound;
    this.numClass = numClass;
    this.objective = objective;
    this.objectiveGiven = objectiveGiven;
    this.evalMetrics = evalMetrics;
    this.earlyStoppingRounds = earlyStoppingRounds;
    this.csvWeights = csvWeights;
    this.maxRows = maxRows;
    this.contentType = contentType;
  }

  /**
   * Checks the job's hyperparameters. {@code cpus} is the task's CPUs (the default {@code nthread}).
   *
   * @throws IllegalArgumentException naming every unknown hyperparameter and every bad value
   */
  public static XGBoostParams parse(Map<String, String> hp, int cpus) {
    List<String> problems = new ArrayList<>();
    List<String> unknown = new ArrayList<>();
    Map<String, String> xgb = new LinkedHashMap<>();
    Map<String, String> clean = new TreeMap<>();
    for (Map.Entry<String, String> e : new TreeMap<>(hp).entrySet()) {
      String name = e.getKey();
      String value = e.getValue() == null ? "" : e.getValue().trim();
      Spec spec = PASS_THROUGH.get(name);
      if (spec == null) spec = RUNNER.get(name);
      if (spec == null) {
        if (name.startsWith("kiln_")) continue; // reserved for Kiln's own settings
        unknown.add(name);
        continue;
      }
      String problem = check(name, value, spec);
      if (problem != null) {
        problems.add(problem);
        continue;
      }
      String normal = normalise(value, spec);
      clean.put(name, normal);
      if (PASS_THROUGH.containsKey(name)) xgb.put(name, normal);
    }
    if (!unknown.isEmpty()) {
      List<String> known = new ArrayList<>(RUNNER.keySet());
      known.addAll(PASS_THROUGH.keySet());
      known.sort(null);
      problems.add(0, "unknown hyperparameter" + (unknown.size() > 1 ? "s " : " ") + String.join(", ", unknown)
          + " (the xgboost algorithm takes: " + String.join(", ", known) + ")");
    }
    String objective = clean.getOrDefault("objective", DEFAULT_OBJECTIVE);
    if (clean.containsKey("objective") && !OBJECTIVES.contains(objective)) {
      problems.add("objective '" + objective + "' is not one of " + String.join(", ", OBJECTIVES));
    }
    if ("gpu_hist".equals(hp.getOrDefault("tree_method", "").trim())) {
      problems.removeIf(p -> p.startsWith("tree_method"));
      problems.add("tree_method gpu_hist: GPU training is not available in the xgboost built-in yet (use hist)");
    }
    List<String> metrics = new ArrayList<>();
    if (clean.containsKey("eval_metric")) {
      for (String m : clean.get("eval_metric").split(",")) {
        String t = m.trim();
        if (!t.isEmpty() && !metrics.contains(t)) metrics.add(t);
      }
      if (metrics.isEmpty()) problems.add("eval_metric: empty (give metric names separated by commas, e.g. merror,mlogloss)");
    }
    if (!problems.isEmpty()) {
      throw new IllegalArgumentException(String.join("; ", problems));
    }
    xgb.putIfAbsent("tree_method", "hist");
    xgb.putIfAbsent("nthread", Integer.toString(Math.max(1, cpus)));
    xgb.putIfAbsent("seed", "0");
    int numRound = clean.containsKey("num_round") ? Integer.parseInt(clean.get("num_round")) : DEFAULT_NUM_ROUND;
    Integer numClass = clean.containsKey("num_class") ? Integer.valueOf(clean.get("num_class")) : null;
    int esr = clean.containsKey("early_stopping_rounds") ? Integer.parseInt(clean.get("early_stopping_rounds")) : 0;
    int maxRows = clean.containsKey("max_rows") ? Integer.parseInt(clean.get("max_rows")) : 0;
    boolean csvWeights = "1".equals(clean.get("csv_weights"));
    return new XGBoostParams(Map.copyOf(clean), xgb, numRound, numClass, objective, clean.containsKey("objective"),
        List.copyOf(metrics), esr, csvWeights, maxRows, clean.get("content_type"));
  }

  /** The same parameters with the objective decided (when the job did not name one) and the class count known. */
  XGBoostParams resolve(String defaultObjective, Integer inferredNumClass) {
    String obj = objectiveGiven ? objective : defaultObjective;
    Integer nc = numClass != null ? numClass : (isMulti(obj) ? inferredNumClass : null);
    return new XGBoostParams(given, xgb, numRound, nc, obj, true, evalMetrics, earlyStoppingRounds, csvWeights,
        maxRows, contentType);
  }

  /** The parameters handed to XGBoost (all values as strings; eval_metric is set separately). */
  public Map<String, Object> xgboostParams() {
    Map<String, Object> p = new LinkedHashMap<>(xgb);
    p.put("objective", objective);
    if (isMulti(objective) && numClass != null) p.put("num_class", numClass.toString());
    return p;
  }

  /** The hyperparameters as given (normalised) plus the values in effect, for the model descriptor. */
  public Map<String, String> effective() {
    Map<String, String> m = new TreeMap<>(given);
    xgb.forEach(m::putIfAbsent);
    m.put("objective", objective);
    m.put("num_round", Integer.toString(numRound));
    if (numClass != null) m.put("num_class", numClass.toString());
    return m;
  }

  public int numRound() {
    return numRound;
  }

  public Integer numClass() {
    return numClass;
  }

  public String objective() {
    return objective;
  }

  public boolean objectiveGiven() {
    return objectiveGiven;
  }

  public List<String> evalMetrics() {
    return evalMetrics;
  }

  public int earlyStoppingRounds() {
    return earlyStoppingRounds;
  }

  public boolean csvWeights() {
    return csvWeights;
  }

  /** Training rows to read (0 = all). */
  public int maxRows() {
    return maxRows;
  }

  /** The content_type hyperparameter or null. */
  public String contentType() {
    return contentType;
  }

  public int nthread() {
    return Integer.parseInt(xgb.get("nthread"));
  }

  public static boolean isMulti(String objective) {
    return objective.startsWith("multi:");
  }

  /** Classification: binary:* and multi:* (accuracy is reported). */
  public static boolean isClassification(String objective) {
    return objective.startsWith("binary:") || isMulti(objective);
  }

  /** Regression on the label's scale (RMSE is reported): reg:*, count:poisson. */
  public static boolean isRegression(String objective) {
    return objective.startsWith("reg:") || objective.equals("count:poisson");
  }

  // ------------------------------------------------------------------ checks

  private static void num(Map<String, Spec> m, String name, double min, boolean minOpen, double max, boolean maxOpen) {
    m.put(name, new Spec(Kind.NUMBER, min, minOpen, max, maxOpen, null));
  }

  private static void integer(Map<String, Spec> m, String name, long min, long max) {
    m.put(name, new Spec(Kind.INT, min, false, max, false, null));
  }

  private static void str(Map<String, Spec> m, String name) {
    m.put(name, new Spec(Kind.STRING, 0, false, 0, false, null));
  }

  private static void bool(Map<String, Spec> m, String name) {
    m.put(name, new Spec(Kind.BOOL01, 0, false, 1, false, null));
  }

  private static void choice(Map<String, Spec> m, String name, String... choices) {
    m.put(name, new Spec(Kind.STRING, 0, false, 0, false, new TreeSet<>(Arrays.asList(choices))));
  }

  private static String check(String name, String value, Spec s) {
    if (value.isEmpty()) return name + ": empty value";
    switch (s.kind()) {
      case STRING:
        if (s.choices() != null && !s.choices().contains(value)) {
          return name + " '" + value + "' must be one of " + String.join(", ", s.choices());
        }
        return null;
      case BOOL01:
        if (value.equals("0") || value.equals("1") || value.equalsIgnoreCase("true") || value.equalsIgnoreCase("false")) {
          return null;
        }
        return name + " '" + value + "' must be 0 or 1";
      case INT: {
        Double d = number(value);
        if (d == null || d != Math.rint(d) || Double.isInfinite(d)) return name + " '" + value + "' is not an integer";
        if (d < s.min() || d > s.max()) return name + " " + value + " is out of range: " + range(s, true);
        return null;
      }
      default: {
        Double d = number(value);
        if (d == null || d.isNaN() || d.isInfinite()) return name + " '" + value + "' is not a number";
        boolean low = s.minOpen() ? d <= s.min() : d < s.min();
        boolean high = s.maxOpen() ? d >= s.max() : d > s.max();
        if (low || high) return name + " " + value + " is out of range: " + range(s, false);
        return null;
      }
    }
  }

  private static String normalise(String value, Spec s) {
    switch (s.kind()) {
      case INT:
        return Long.toString((long) Double.parseDouble(value));
      case BOOL01:
        return value.equals("1") || value.equalsIgnoreCase("true") ? "1" : "0";
      default:
        return value;
    }
  }

  private static String range(Spec s, boolean integer) {
    boolean noMin = s.min() <= -Double.MAX_VALUE || s.min() == Integer.MIN_VALUE;
    boolean noMax = s.max() >= Double.MAX_VALUE || s.max() == Integer.MAX_VALUE;
    String lo = fmt(s.min(), integer);
    String hi = fmt(s.max(), integer);
    if (noMax && !noMin) return "must be " + (s.minOpen() ? "> " : ">= ") + lo;
    if (noMin && !noMax) return "must be " + (s.maxOpen() ? "< " : "<= ") + hi;
    return "must be in " + (s.minOpen() ? "(" : "[") + lo + ", " + hi + (s.maxOpen() ? ")" : "]");
  }

  private static String fmt(double v, boolean integer) {
    if (integer || v == Math.rint(v)) return Long.toString((long) v);
    return String.format(Locale.ROOT, "%s", v);
  }

  private static Double number(String s) {
    try {
      return Double.parseDouble(s);
    } catch (NumberFormatException e) {
      return null;
    }
  }
}

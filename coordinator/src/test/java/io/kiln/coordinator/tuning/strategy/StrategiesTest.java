package io.kiln.coordinator.tuning.strategy;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.coordinator.tuning.strategy.ParameterRange.Scale;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.Test;

class StrategiesTest {
  static final SearchSpace SPACE = new SearchSpace(List.of(
      new ParameterRange.Continuous("learning_rate", 1e-4, 1e-1, Scale.LOG),
      new ParameterRange.IntegerRange("width", 16, 512, Scale.LINEAR),
      new ParameterRange.Categorical("optimizer", List.of("sgd", "adam"))));

  @Test
  void gridEnumeratesEveryCombinationExactlyOnceThenStops() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Categorical("a", List.of("x", "y", "z")),
        new ParameterRange.IntegerRange("b", 1, 2, Scale.LINEAR)));
    GridSearch grid = new GridSearch(s, 5);
    assertEquals(6, grid.size());
    List<TrialRecord> trials = new ArrayList<>();
    Set<Map<String, String>> seen = new HashSet<>();
    for (int i = 0; i < 6; i++) {
      Map<String, String> p = grid.suggest(trials).orElseThrow().params();
      assertTrue(seen.add(p), "no repeats: " + p);
      trials.add(TrialRecord.completed("t" + i, p, i));
    }
    assertEquals(Set.of(Map.of("a", "x", "b", "1"), Map.of("a", "x", "b", "2"), Map.of("a", "y", "b", "1"),
        Map.of("a", "y", "b", "2"), Map.of("a", "z", "b", "1"), Map.of("a", "z", "b", "2")), seen);
    assertTrue(grid.suggest(trials).isEmpty());
    assertTrue(grid.exhausted(trials));
  }

  @Test
  void gridSkipsPointsAWarmStartParentAlreadyTried() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Continuous("c", 0, 1, Scale.LINEAR)));
    GridSearch grid = new GridSearch(s, 3);
    assertEquals(List.of("0.0", "0.5", "1.0"), s.ranges().get(0).grid(3));
    TrialRecord warm = new TrialRecord("p/t1", Map.of("c", "0.0"), TrialRecord.State.COMPLETED, 1, 0, "", true, List.of());
    assertEquals(Map.of("c", "0.5"), grid.suggest(List.of(warm)).orElseThrow().params());
  }

  @Test
  void logScaleGridIsGeometric() {
    assertEquals(List.of("1.0E-4", "0.001", "0.01", "0.1"),
        new ParameterRange.Continuous("lr", 1e-4, 1e-1, Scale.LOG).grid(4).stream()
            .map(v -> Double.toString(Math.round(Double.parseDouble(v) * 1e6) / 1e6)).toList());
  }

  @Test
  void randomStaysInRangeAndIsUniformOnTheLogScale() {
    RandomSearch r = new RandomSearch(SPACE, 42);
    List<TrialRecord> trials = new ArrayList<>();
    int belowGeometricMiddle = 0;
    Set<String> optimizers = new HashSet<>();
    for (int i = 0; i < 2000; i++) {
      Map<String, String> p = r.suggest(trials).orElseThrow().params();
      double lr = Double.parseDouble(p.get("learning_rate"));
      long w = Long.parseLong(p.get("width"));
      assertTrue(lr >= 1e-4 && lr <= 1e-1, "learning_rate in range: " + lr);
      assertTrue(w >= 16 && w <= 512, "width in range: " + w);
      optimizers.add(p.get("optimizer"));
      if (lr < Math.sqrt(1e-4 * 1e-1)) belowGeometricMiddle++;
      trials.add(TrialRecord.completed("t" + i, p, 0));
    }
    // uniform in log space: half the draws below the geometric middle (a linear scale would give ~3%)
    assertTrue(belowGeometricMiddle > 900 && belowGeometricMiddle < 1100, "log-uniform: " + belowGeometricMiddle);
    assertEquals(Set.of("sgd", "adam"), optimizers);
  }

  @Test
  void sameSeedSameTrialsAndEachDrawIndependentOfHistoryContent() {
    List<TrialRecord> a = new ArrayList<>();
    List<TrialRecord> b = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      Map<String, String> pa = new RandomSearch(SPACE, 7).suggest(a).orElseThrow().params();
      Map<String, String> pb = new RandomSearch(SPACE, 7).suggest(b).orElseThrow().params();
      assertEquals(pa, pb);
      a.add(TrialRecord.completed("t" + i, pa, i));
      b.add(new TrialRecord("t" + i, pb, TrialRecord.State.RUNNING, Double.NaN, 0, "", false, List.of()));
    }
    assertNotEquals(new RandomSearch(SPACE, 7).suggest(List.of()), new RandomSearch(SPACE, 8).suggest(List.of()));
  }

  @Test
  void bayesianFindsTheOptimumOfA1dFunctionFasterThanRandom() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Continuous("lr", 1e-5, 1, Scale.LOG)));
    // a learning-rate curve: best at lr = 10^-2.3, loss grows quadratically in log10(lr)
    ToDoubleFunction<Map<String, String>> f = p -> Math.pow(Math.log10(Double.parseDouble(p.get("lr"))) + 2.3, 2);
    assertBayesianBeatsRandom(s, f, 12, 10);
  }

  @Test
  void bayesianFindsTheOptimumOfBraninFasterThanRandom() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Continuous("x", -5, 10, Scale.LINEAR),
        new ParameterRange.Continuous("y", 0, 15, Scale.LINEAR)));
    ToDoubleFunction<Map<String, String>> branin = p -> {
      double x = Double.parseDouble(p.get("x"));
      double y = Double.parseDouble(p.get("y"));
      double b = 5.1 / (4 * Math.PI * Math.PI);
      double c = 5 / Math.PI;
      return Math.pow(y - b * x * x + c * x - 6, 2) + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x) + 10;
    };
    assertBayesianBeatsRandom(s, branin, 25, 8);
  }

  private static void assertBayesianBeatsRandom(SearchSpace s, ToDoubleFunction<Map<String, String>> f, int budget,
                                                int seeds) {
    double bayes = 0;
    double random = 0;
    for (long seed = 1; seed <= seeds; seed++) {
      bayes += bestAfter(new BayesianSearch(s, seed), f, budget);
      random += bestAfter(new RandomSearch(s, seed), f, budget);
    }
    bayes /= seeds;
    random /= seeds;
    assertTrue(bayes < random, "mean best: GP-EI " + bayes + " vs random " + random);
  }

  static double bestAfter(SearchStrategy strategy, ToDoubleFunction<Map<String, String>> f, int budget) {
    List<TrialRecord> trials = new ArrayList<>();
    double best = Double.POSITIVE_INFINITY;
    for (int i = 0; i < budget; i++) {
      Map<String, String> p = strategy.suggest(trials).orElseThrow().params();
      double y = f.applyAsDouble(p);
      best = Math.min(best, y);
      trials.add(TrialRecord.completed("t" + i, p, y));
    }
    return best;
  }

  @Test
  void bayesianWarmStartedFromAParentModelsFromItsFirstTrial() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Continuous("x", 0, 1, Scale.LINEAR)));
    List<TrialRecord> trials = new ArrayList<>();
    for (int i = 0; i <= 8; i++) {
      double x = 0.05 + i * 0.1;
      trials.add(new TrialRecord("parent/t" + i, Map.of("x", Double.toString(x)), TrialRecord.State.COMPLETED,
          (x - 0.3) * (x - 0.3), 0, "", true, List.of()));
    }
    double first = Double.parseDouble(new BayesianSearch(s, 1).suggest(trials).orElseThrow().params().get("x"));
    assertTrue(Math.abs(first - 0.3) < 0.1, "the first own trial goes near the parent's optimum, not at random: " + first);
  }

  @Test
  void bayesianSpreadsParallelTrialsThroughTheConstantLiar() {
    SearchSpace s = new SearchSpace(List.of(new ParameterRange.Continuous("x", 0, 1, Scale.LINEAR)));
    List<TrialRecord> trials = new ArrayList<>();
    for (int i = 0; i < 5; i++) trials.add(TrialRecord.completed("t" + i, Map.of("x", Double.toString(i / 4.0)), Math.abs(i / 4.0 - 0.6)));
    BayesianSearch b = new BayesianSearch(s, 3);
    Map<String, String> first = b.suggest(trials).orElseThrow().params();
    trials.add(new TrialRecord("t5", first, TrialRecord.State.RUNNING, Double.NaN, 0, "", false, List.of()));
    Map<String, String> second = b.suggest(trials).orElseThrow().params();
    assertTrue(Math.abs(Double.parseDouble(first.get("x")) - Double.parseDouble(second.get("x"))) > 1e-3,
        "a running trial's point is not suggested again: " + first + " " + second);
  }

  @Test
  void hyperbandRungsAndPromotionByTopFraction() {
    Hyperband h = new Hyperband(new SearchSpace(List.of(new ParameterRange.Continuous("lr", 0.01, 1, Scale.LOG))),
        1, "epochs", 1, 9, 3);
    assertEquals(List.of(1L, 3L, 9L), h.rungs());
    assertEquals(List.of(2L, 6L, 10L), new Hyperband(h.space(), 1, "epochs", 2, 10, 3).rungs());
    List<TrialRecord> trials = new ArrayList<>();
    // two finished at rung 0: floor(2/3) = 0 promotable, so a fresh trial at rung 0
    trials.add(rung("a", 0, 0.5, ""));
    trials.add(rung("b", 0, 0.2, ""));
    Suggestion s = h.suggest(trials).orElseThrow();
    assertEquals(0, s.rung());
    assertEquals("1", s.params().get("epochs"));
    assertEquals("", s.parentId());
    // a third: floor(3/3) = 1, the best (b) goes to rung 1 with 3 epochs and its own hyperparameters
    trials.add(rung("c", 0, 0.9, ""));
    s = h.suggest(trials).orElseThrow();
    assertEquals(1, s.rung());
    assertEquals("b", s.parentId());
    assertEquals("3", s.params().get("epochs"));
    assertEquals(trials.get(1).params().get("lr"), s.params().get("lr"));
    // once b is promoted (its rung-1 trial running), nothing else in rung 0 qualifies
    trials.add(new TrialRecord("b1", s.params(), TrialRecord.State.RUNNING, Double.NaN, 1, "b", false, List.of()));
    assertEquals(0, h.suggest(trials).orElseThrow().rung());
    // six at rung 0: top 2 (b, then d) promotable
    trials.add(rung("d", 0, 0.3, ""));
    trials.add(rung("e", 0, 0.8, ""));
    trials.add(rung("f", 0, 0.7, ""));
    assertEquals("d", h.suggest(trials).orElseThrow().parentId());
    // higher rungs first: three finished at rung 1 -> the best of them goes to rung 2 (9 epochs)
    trials.set(trials.indexOf(trials.stream().filter(t -> t.id().equals("b1")).findFirst().orElseThrow()),
        rung("b1", 1, 0.1, "b"));
    trials.add(rung("x1", 1, 0.4, "x"));
    trials.add(rung("y1", 1, 0.6, "y"));
    s = h.suggest(trials).orElseThrow();
    assertEquals(2, s.rung());
    assertEquals("b1", s.parentId());
    assertEquals("9", s.params().get("epochs"));
  }

  @Test
  void hyperbandIgnoresFailedAndEarlyStoppedTrials() {
    Hyperband h = new Hyperband(new SearchSpace(List.of(new ParameterRange.Categorical("k", List.of("1", "2")))), 1,
        "epochs", 1, 4, 2);
    List<TrialRecord> trials = List.of(rung("a", 0, 0.1, ""),
        new TrialRecord("b", Map.of("k", "1"), TrialRecord.State.FAILED, Double.NaN, 0, "", false, List.of()),
        new TrialRecord("c", Map.of("k", "1"), TrialRecord.State.STOPPED, Double.NaN, 0, "", false, List.of()));
    assertEquals(0, h.suggest(trials).orElseThrow().rung(), "one finished at eta 2: nothing to promote");
  }

  private static TrialRecord rung(String id, int rung, double loss, String parent) {
    return new TrialRecord(id, Map.of("lr", Double.toString(0.01 + new Random(id.hashCode()).nextDouble() / 2)),
        TrialRecord.State.COMPLETED, loss, rung, parent, false, List.of());
  }

  @Test
  void medianRuleStopsATrialWorseThanTheMedianOfRunningAverages() {
    MedianStoppingRule rule = new MedianStoppingRule(3, 2);
    List<List<Double>> others = List.of(List.of(1.0, 0.8, 0.6), List.of(0.9, 0.7, 0.5), List.of(1.2, 1.0, 0.9));
    // running averages at t=2: 0.9, 0.8, 1.1 -> median 0.9
    assertTrue(rule.shouldStop(List.of(1.5, 0.95), others));
    assertFalse(rule.shouldStop(List.of(1.5, 0.85), others));
    assertFalse(rule.shouldStop(List.of(5.0), others), "not before minEpochs");
    assertFalse(rule.shouldStop(List.of(1.5, 0.95), others.subList(0, 2)), "not before minTrials reached t");
    assertFalse(rule.shouldStop(List.of(1.5, 0.95, 0.9, 0.9), others), "others that never reached t do not count");
    assertEquals(2.5, MedianStoppingRule.median(List.of(4.0, 1.0, 2.0, 3.0)));
  }

  @Test
  void badRangesAreRejectedWithTheirName() {
    var e = assertThrows(IllegalArgumentException.class, () -> new ParameterRange.Continuous("lr", 0, 1, Scale.LOG));
    assertTrue(e.getMessage().contains("lr"));
    assertThrows(IllegalArgumentException.class, () -> new ParameterRange.IntegerRange("w", 5, 1, Scale.LINEAR));
    assertThrows(IllegalArgumentException.class, () -> new ParameterRange.Categorical("c", List.of()));
  }
}

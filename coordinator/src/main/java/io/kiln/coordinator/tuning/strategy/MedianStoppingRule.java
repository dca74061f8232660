package io.kiln.coordinator.tuning.strategy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The median stopping rule (Golovin et al., Google Vizier, 2017): stop a trial at epoch t when its
 * best intermediate value up to t is worse than the median of the other trials' running averages up
 * to t. Only trials that reached t count, and only once {@code minTrials} of them did; nothing is
 * stopped before {@code minEpochs}. Values are losses (lower is better), one per epoch.
 */
public record MedianStoppingRule(int minTrials, int minEpochs) {

  public boolean shouldStop(List<Double> curve, List<List<Double>> others) {
    int t = curve.size();
    if (t < Math.max(1, minEpochs)) return false;
    double best = curve.stream().mapToDouble(Double::doubleValue).filter(v -> !Double.isNaN(v)).min().orElse(Double.NaN);
    if (Double.isNaN(best)) return false;
    List<Double> averages = new ArrayList<>();
    for (List<Double> o : others) {
      if (o.size() < t) continue;
      double[] head = o.subList(0, t).stream().mapToDouble(Double::doubleValue).filter(v -> !Double.isNaN(v)).toArray();
      if (head.length > 0) averages.add(Arrays.stream(head).average().orElseThrow());
    }
    if (averages.size() < Math.max(1, minTrials)) return false;
    return best > median(averages);
  }

  static double median(List<Double> values) {
    double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    int n = v.length;
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
}

package io.kiln.coordinator.tuning;

import io.kiln.protocol.proto.Progress;
import java.util.ArrayList;
import java.util.List;

/**
 * A trial's intermediate values, one per finished epoch, read from its job's progress reports.
 * The value of an epoch is the last one reported in it; an epoch counts as finished when a report
 * comes from a later epoch or from its last step.
 */
final class Curves {
  private Curves() {}

  /** The intermediate value in a progress report, or NaN: "loss"/"" is the training loss, else a progress metric. */
  static double value(Progress p, String metric) {
    if (metric.isEmpty() || metric.equals("loss") || metric.equals("train_loss")) {
      return p.getTotalSteps() > 0 || p.getStep() > 0 ? p.getLoss() : Double.NaN;
    }
    return p.getMetricsOrDefault(metric, Double.NaN);
  }

  /** Whether lower intermediate values are better: the training loss always, a metric as the objective. */
  static boolean lowerIsBetter(String metric, boolean maximizeObjective) {
    return metric.isEmpty() || metric.equals("loss") || metric.equals("train_loss") || !maximizeObjective;
  }

  /**
   * The curve after report {@code p}: {@code finished} holds finished epochs' values, {@code current}
   * the open epoch (index = epoch - 1). Returns the finished values (the part the median rule may use).
   */
  static List<Double> update(List<Double> finished, double[] current, Progress p, String metric) {
    double v = value(p, metric);
    int epoch = p.getEpoch();
    if (epoch <= 0 || Double.isNaN(v)) return finished;
    List<Double> out = new ArrayList<>(finished);
    // an epoch earlier than the open one closes it (epochs only move forward)
    if (current[1] > 0 && epoch > (int) current[1] && out.size() < (int) current[1]) {
      while (out.size() < (int) current[1] - 1) out.add(Double.NaN);
      out.add(current[0]);
    }
    current[0] = v;
    current[1] = epoch;
    long perEpoch = p.getTotalEpochs() > 0 ? p.getTotalSteps() / p.getTotalEpochs() : 0;
    if (perEpoch > 0 && p.getStep() > 0 && p.getStep() % perEpoch == 0 && out.size() < epoch) {
      while (out.size() < epoch - 1) out.add(Double.NaN);
      out.add(v);
    }
    return out;
  }
}

package io.kiln.coordinator.tuning.strategy;

import org.apache.commons.math3.distribution.NormalDistribution;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.ArrayRealVector;
import org.apache.commons.math3.linear.CholeskyDecomposition;
import org.apache.commons.math3.linear.NonPositiveDefiniteMatrixException;
import org.apache.commons.math3.linear.RealMatrix;
import org.apache.commons.math3.linear.RealVector;

/**
 * Gaussian-process regression on the unit cube with a Matérn 5/2 kernel (the usual choice for
 * hyperparameter surfaces: smooth, but not as smooth as the squared exponential assumes). Targets
 * are standardized; the length scale and noise are picked from a small grid by the log marginal
 * likelihood, which is robust and needs no gradient code for the handful of points a tuning job has.
 */
public final class GaussianProcess {
  private static final double[] LENGTH_SCALES = {0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2};
  private static final double[] NOISES = {1e-6, 1e-3, 1e-2, 1e-1};
  private static final NormalDistribution NORMAL = new NormalDistribution(null, 0, 1);

  private final double[][] x;
  private final double mean;
  private final double scale;
  private final double lengthScale;
  private final CholeskyDecomposition chol;
  private final RealVector alpha;

  private GaussianProcess(double[][] x, double mean, double scale, double lengthScale, CholeskyDecomposition chol,
                          RealVector alpha) {
    this.x = x;
    this.mean = mean;
    this.scale = scale;
    this.lengthScale = lengthScale;
    this.chol = chol;
    this.alpha = alpha;
  }

  /** Fits to points {@code x} (rows in [0,1]^d) with observed {@code y}; needs at least one point. */
  public static GaussianProcess fit(double[][] x, double[] y) {
    int n = y.length;
    double mean = 0;
    for (double v : y) mean += v;
    mean /= n;
    double var = 0;
    for (double v : y) var += (v - mean) * (v - mean);
    double scale = n > 1 && var > 0 ? Math.sqrt(var / n) : 1;
    RealVector ys = new ArrayRealVector(n);
    for (int i = 0; i < n; i++) ys.setEntry(i, (y[i] - mean) / scale);
    GaussianProcess best = null;
    double bestLml = Double.NEGATIVE_INFINITY;
    for (double l : LENGTH_SCALES) {
      for (double noise : NOISES) {
        RealMatrix k = new Array2DRowRealMatrix(n, n);
        for (int i = 0; i < n; i++) {
          for (int j = 0; j <= i; j++) {
            double v = kernel(x[i], x[j], l) + (i == j ? noise : 0);
            k.setEntry(i, j, v);
            k.setEntry(j, i, v);
          }
        }
        CholeskyDecomposition c;
        try {
          c = new CholeskyDecomposition(k, 1e-10, 1e-12);
        } catch (NonPositiveDefiniteMatrixException | org.apache.commons.math3.linear.NonSymmetricMatrixException e) {
          continue;
        }
        RealVector a = c.getSolver().solve(ys);
        double logDet = 0;
        RealMatrix lower = c.getL();
        for (int i = 0; i < n; i++) logDet += 2 * Math.log(lower.getEntry(i, i));
        double lml = -0.5 * ys.dotProduct(a) - 0.5 * logDet;
        if (lml > bestLml) {
          bestLml = lml;
          best = new GaussianProcess(x, mean, scale, l, c, a);
        }
      }
    }
    if (best == null) throw new IllegalStateException("no Gaussian-process fit: the kernel matrix is singular");
    return best;
  }

  /** Posterior mean and standard deviation at {@code p}, in the units of y. */
  public double[] predict(double[] p) {
    int n = x.length;
    RealVector ks = new ArrayRealVector(n);
    for (int i = 0; i < n; i++) ks.setEntry(i, kernel(x[i], p, lengthScale));
    double mu = ks.dotProduct(alpha);
    double var = Math.max(1e-12, 1 - ks.dotProduct(chol.getSolver().solve(ks)));
    return new double[] {mean + scale * mu, scale * Math.sqrt(var)};
  }

  /** Expected improvement below {@code best} (minimization) at {@code p}. */
  public double expectedImprovement(double[] p, double best) {
    double[] ms = predict(p);
    double improvement = best - ms[0];
    if (ms[1] <= 1e-12) return Math.max(0, improvement);
    double z = improvement / ms[1];
    return improvement * NORMAL.cumulativeProbability(z) + ms[1] * NORMAL.density(z);
  }

  public double lengthScale() {
    return lengthScale;
  }

  static double kernel(double[] a, double[] b, double l) {
    double d2 = 0;
    for (int i = 0; i < a.length; i++) d2 += (a[i] - b[i]) * (a[i] - b[i]);
    double r = Math.sqrt(5 * d2) / l;
    return (1 + r + r * r / 3) * Math.exp(-r);
  }
}

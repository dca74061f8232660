package io.kiln.worker.algorithms.pca;

import io.kiln.worker.algorithms.group.RankGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.EigenDecomposition;
import org.apache.commons.math3.linear.QRDecomposition;
import org.apache.commons.math3.linear.RealMatrix;
import org.apache.commons.math3.linear.SingularValueDecomposition;

/**
 * PCA over row shards held by the ranks of a {@link RankGroup} (one rank: the whole data). Both
 * modes only exchange sums, so the ranks never ship rows:
 *
 * <ul>
 *   <li>regular: the scatter matrix {@code X^T X} (and column sums) summed over the ranks, then a
 *       symmetric eigendecomposition (Apache Commons Math) — exact, {@code O(n d^2)} work and a
 *       {@code d x d} matrix;
 *   <li>randomized: Halko, Martinsson and Tropp's randomized SVD (2011, algorithm 4.4 with power
 *       iterations): {@code Y = Xc Omega} for a Gaussian {@code d x l} test matrix, {@code q} power
 *       iterations, then the SVD of the small {@code l x d} matrix {@code B = Q^T Xc}. The row-sharded
 *       {@code Y} is orthonormalised through its all-reduced Gram matrix {@code Y^T Y} (an {@code l x l}
 *       eigendecomposition), and {@code Xc^T Q} is all-reduced; work is {@code O(n d l)} per pass.
 * </ul>
 */
public final class PcaFit {
  /** Components (rows, unit length, sign: largest entry positive), the mean used, singular values, variance. */
  public record Result(double[][] components, double[] mean, double[] singularValues, double[] explainedVariance,
      double totalVariance, long rows) {}

  private PcaFit() {}

  /** Column sums, sums of squares and the row count over all ranks: {sum (d), sumsq (d), n}. */
  static double[] moments(double[][] x, int d, RankGroup g) {
    double[] s = new double[2 * d + 1];
    for (double[] r : x) {
      for (int j = 0; j < d; j++) {
        s[j] += r[j];
        s[d + j] += r[j] * r[j];
      }
    }
    s[2 * d] = x.length;
    return g.sumDoubles(s);
  }

  public static Result fit(double[][] x, int d, int k, boolean randomized, boolean subtractMean, int extra,
      int powerIterations, long seed, int threads, RankGroup g) throws Exception {
    double[] mom = moments(x, d, g);
    long n = (long) mom[2 * d];
    double[] mean = new double[d];
    double total = 0;
    for (int j = 0; j < d; j++) {
      double mu = mom[j] / n;
      if (subtractMean) mean[j] = mu;
      total += mom[d + j] - (subtractMean ? n * mu * mu : 0);
    }
    double denom = Math.max(1, n - 1);
    double[][] comps;
    double[] sv;
    if (!randomized) {
      double[][] scatter = scatter(x, d, mean, threads, g);
      EigenDecomposition eig = new EigenDecomposition(new Array2DRowRealMatrix(scatter, false));
      double[] ev = eig.getRealEigenvalues();
      Integer[] order = new Integer[d];
      for (int i = 0; i < d; i++) order[i] = i;
      java.util.Arrays.sort(order, (a, b) -> Double.compare(ev[b], ev[a]));
      comps = new double[k][];
      sv = new double[k];
      for (int c = 0; c < k; c++) {
        comps[c] = eig.getEigenvector(order[c]).toArray();
        sv[c] = Math.sqrt(Math.max(0, ev[order[c]]));
      }
    } else {
      int l = Math.min(d, k + extra);
      Random r = new Random(seed);
      double[][] omega = new double[d][l];
      for (double[] row : omega) for (int j = 0; j < l; j++) row[j] = r.nextGaussian();
      double[][] q = orthonormalRows(times(x, mean, omega), l, g);
      for (int it = 0; it < powerIterations; it++) {
        double[][] z = transposeTimes(x, mean, q, d, l, g);
        RealMatrix zq = new QRDecomposition(new Array2DRowRealMatrix(z, false)).getQ();
        double[][] zo = zq.getSubMatrix(0, d - 1, 0, l - 1).getData();
        q = orthonormalRows(times(x, mean, zo), l, g);
      }
      // B^T = Xc^T Q (d x l): its left singular vectors are B's right ones, the principal axes
      SingularValueDecomposition svd = new SingularValueDecomposition(
          new Array2DRowRealMatrix(transposeTimes(x, mean, q, d, l, g), false));
      double[] s = svd.getSingularValues();
      RealMatrix u = svd.getU();
      comps = new double[k][];
      sv = new double[k];
      for (int c = 0; c < k; c++) {
        comps[c] = u.getColumn(c);
        sv[c] = s[c];
      }
    }
    double[] variance = new double[k];
    for (int c = 0; c < k; c++) {
      normalizeSign(comps[c]);
      variance[c] = sv[c] * sv[c] / denom;
    }
    return new Result(comps, mean, sv, variance, total / denom, n);
  }

  /** Flips {@code v} so that its largest-magnitude entry is positive (SVD signs are arbitrary). */
  static void normalizeSign(double[] v) {
    int m = 0;
    for (int j = 1; j < v.length; j++) if (Math.abs(v[j]) > Math.abs(v[m])) m = j;
    if (v[m] < 0) for (int j = 0; j < v.length; j++) v[j] = -v[j];
  }

  /** (X - mean)^T (X - mean) over all ranks, rows split over {@code threads} threads. */
  static double[][] scatter(double[][] x, int d, double[] mean, int threads, RankGroup g) throws Exception {
    int t = Math.max(1, Math.min(threads, x.length / 256 + 1));
    ExecutorService pool = Executors.newFixedThreadPool(t);
    try {
      List<Future<double[]>> parts = new ArrayList<>();
      for (int p = 0; p < t; p++) {
        int from = (int) ((long) p * x.length / t);
        int to = (int) ((long) (p + 1) * x.length / t);
        parts.add(pool.submit(() -> {
          double[] acc = new double[d * d]; // upper triangle, row-major
          double[] c = new double[d];
          for (int i = from; i < to; i++) {
            for (int j = 0; j < d; j++) c[j] = x[i][j] - mean[j];
            for (int j = 0; j < d; j++) {
              double cj = c[j];
              if (cj == 0) continue;
              int off = j * d;
              for (int m = j; m < d; m++) acc[off + m] += cj * c[m];
            }
          }
          return acc;
        }));
      }
      double[] sum = new double[d * d];
      for (Future<double[]> f : parts) {
        double[] a = f.get();
        for (int i = 0; i < sum.length; i++) sum[i] += a[i];
      }
      sum = g.sumDoubles(sum);
      double[][] s = new double[d][d];
      for (int j = 0; j < d; j++) {
        for (int m = j; m < d; m++) {
          s[j][m] = sum[j * d + m];
          s[m][j] = sum[j * d + m];
        }
      }
      return s;
    } finally {
      pool.shutdownNow();
    }
  }

  /** (X - mean) W for this rank's rows: n_r x l. */
  static double[][] times(double[][] x, double[] mean, double[][] w) {
    int d = mean.length;
    int l = w[0].length;
    double[][] y = new double[x.length][l];
    for (int i = 0; i < x.length; i++) {
      double[] yi = y[i];
      for (int j = 0; j < d; j++) {
        double c = x[i][j] - mean[j];
        if (c == 0) continue;
        double[] wj = w[j];
        for (int m = 0; m < l; m++) yi[m] += c * wj[m];
      }
    }
    return y;
  }

  /** (X - mean)^T Q summed over the ranks: d x l. */
  static double[][] transposeTimes(double[][] x, double[] mean, double[][] q, int d, int l, RankGroup g) {
    double[] acc = new double[d * l];
    for (int i = 0; i < x.length; i++) {
      double[] qi = q[i];
      for (int j = 0; j < d; j++) {
        double c = x[i][j] - mean[j];
        if (c == 0) continue;
        int off = j * l;
        for (int m = 0; m < l; m++) acc[off + m] += c * qi[m];
      }
    }
    acc = g.sumDoubles(acc);
    double[][] out = new double[d][l];
    for (int j = 0; j < d; j++) System.arraycopy(acc, j * l, out[j], 0, l);
    return out;
  }

  /**
   * Orthonormal columns spanning the row-sharded {@code y} (n x l over all ranks): with the
   * all-reduced Gram matrix {@code G = Y^T Y = V L V^T}, {@code Q = Y V L^-1/2}; directions with a
   * negligible eigenvalue (rank-deficient data) become zero columns.
   */
  static double[][] orthonormalRows(double[][] y, int l, RankGroup g) {
    // twice, as CholeskyQR2: the second pass repairs the orthogonality the squared condition number cost
    return gramOrthonormalize(gramOrthonormalize(y, l, g), l, g);
  }

  private static double[][] gramOrthonormalize(double[][] y, int l, RankGroup g) {
    double[] gram = new double[l * l];
    for (double[] r : y) for (int a = 0; a < l; a++) for (int b = 0; b < l; b++) gram[a * l + b] += r[a] * r[b];
    gram = g.sumDoubles(gram);
    double[][] gm = new double[l][l];
    for (int a = 0; a < l; a++) System.arraycopy(gram, a * l, gm[a], 0, l);
    EigenDecomposition eig = new EigenDecomposition(new Array2DRowRealMatrix(gm, false));
    double[] ev = eig.getRealEigenvalues();
    double max = 0;
    for (double v : ev) max = Math.max(max, v);
    double[][] t = new double[l][l]; // V L^-1/2
    for (int c = 0; c < l; c++) {
      if (!(ev[c] > 1e-12 * max)) continue;
      double[] v = eig.getEigenvector(c).toArray();
      double s = 1 / Math.sqrt(ev[c]);
      for (int a = 0; a < l; a++) t[a][c] = v[a] * s;
    }
    double[][] q = new double[y.length][l];
    for (int i = 0; i < y.length; i++) {
      for (int a = 0; a < l; a++) {
        double ya = y[i][a];
        if (ya == 0) continue;
        for (int c = 0; c < l; c++) q[i][c] += ya * t[a][c];
      }
    }
    return q;
  }
}

package io.kiln.worker.algorithms.knn;

import io.kiln.worker.algorithms.kmeans.KMeansRunner;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * An inverted-file index over the stored rows, as FAISS's {@code IndexIVFFlat}: a coarse k-means
 * quantizer of {@code nlist} centroids (trained on a sample of at most {@code 64 x nlist} rows,
 * k-means++ seeding, at most {@value #TRAIN_ITERATIONS} Lloyd iterations) and, per centroid, the
 * ids of the rows nearest to it. A query scans the rows of its {@code nprobe} nearest lists with the
 * exact distance, so {@code nprobe = nlist} is exact search and smaller values trade recall for
 * speed. For cosine distance the quantizer works on unit-length rows.
 */
public final class IvfIndex {
  static final int TRAIN_ITERATIONS = 20;
  static final int SAMPLE_PER_LIST = 64;

  final double[][] centroids;
  final int[][] lists;
  final int[] listOf;
  final int nprobe;
  private final boolean cosine;

  private IvfIndex(double[][] centroids, int[][] lists, int[] listOf, int nprobe, boolean cosine) {
    this.centroids = centroids;
    this.lists = lists;
    this.listOf = listOf;
    this.nprobe = nprobe;
    this.cosine = cosine;
  }

  /** Default list count: about sqrt(rows), FAISS's usual starting point. */
  public static int autoNlist(int rows) {
    return (int) Math.max(1, Math.min(rows, Math.round(Math.sqrt(rows))));
  }

  /** Default probes: an eighth of the lists, at least 1. */
  public static int autoNprobe(int nlist) {
    return Math.max(1, (nlist + 7) / 8);
  }

  public static IvfIndex build(double[][] x, int nlist, int nprobe, boolean cosine, long seed) throws Exception {
    int n = x.length;
    nlist = Math.max(1, Math.min(nlist, n));
    double[][] rows = cosine ? unit(x) : x;
    double[][] sample = rows;
    int want = (int) Math.min(n, (long) SAMPLE_PER_LIST * nlist);
    if (want < n) {
      int[] idx = new int[n];
      for (int i = 0; i < n; i++) idx[i] = i;
      Random r = new Random(seed);
      sample = new double[want][];
      for (int i = 0; i < want; i++) {
        int j = i + r.nextInt(n - i);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        sample[i] = rows[idx[i]];
      }
    }
    nlist = Math.min(nlist, distinct(sample, nlist));
    double[][] c = KMeansRunner.fit(sample, nlist, true, TRAIN_ITERATIONS, 1e-4, seed, null).centroids();
    int[] listOf = new int[n];
    int[] sizes = new int[nlist];
    for (int i = 0; i < n; i++) {
      listOf[i] = (int) KMeansRunner.nearest(c, rows[i])[0];
      sizes[listOf[i]]++;
    }
    int[][] lists = new int[nlist][];
    for (int l = 0; l < nlist; l++) lists[l] = new int[sizes[l]];
    int[] fill = new int[nlist];
    for (int i = 0; i < n; i++) lists[listOf[i]][fill[listOf[i]]++] = i; // ascending ids in each list
    return new IvfIndex(c, lists, listOf, Math.max(1, Math.min(nprobe, nlist)), cosine);
  }

  /** The ids of the rows in the {@code nprobe} lists nearest to {@code q}, ascending. */
  int[] candidates(double[] q) {
    double[] qq = cosine ? unit(q) : q;
    int nl = centroids.length;
    double[] d = new double[nl];
    Integer[] order = new Integer[nl];
    for (int l = 0; l < nl; l++) {
      d[l] = BuiltinSupport.l2sq(qq, centroids[l]);
      order[l] = l;
    }
    Arrays.sort(order, (a, b) -> Double.compare(d[a], d[b]));
    int total = 0;
    for (int p = 0; p < nprobe; p++) total += lists[order[p]].length;
    int[] out = new int[total];
    int pos = 0;
    for (int p = 0; p < nprobe; p++) {
      int[] l = lists[order[p]];
      System.arraycopy(l, 0, out, pos, l.length);
      pos += l.length;
    }
    Arrays.sort(out);
    return out;
  }

  public int nlist() {
    return centroids.length;
  }

  /** At most {@code cap} distinct rows (k-means++ needs as many distinct rows as centroids). */
  private static int distinct(double[][] x, int cap) {
    List<double[]> seen = new ArrayList<>();
    java.util.Set<List<Double>> keys = new java.util.HashSet<>();
    for (double[] r : x) {
      if (keys.add(BuiltinSupport.list(r))) seen.add(r);
      if (seen.size() >= cap) break;
    }
    return Math.max(1, seen.size());
  }

  static double[][] unit(double[][] x) {
    double[][] out = new double[x.length][];
    for (int i = 0; i < x.length; i++) out[i] = unit(x[i]);
    return out;
  }

  static double[] unit(double[] v) {
    double n = BuiltinSupport.norm(v);
    if (n == 0) return v.clone();
    double[] u = new double[v.length];
    for (int j = 0; j < v.length; j++) u[j] = v[j] / n;
    return u;
  }
}

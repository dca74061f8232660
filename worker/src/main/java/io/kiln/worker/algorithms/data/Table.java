package io.kiln.worker.algorithms.data;

import java.util.Arrays;

/**
 * A labelled table of float features for the built-in algorithms, held in memory in one of two
 * layouts:
 * <ul>
 *   <li><b>dense</b>: {@code rows x cols} values row-major, {@code NaN} = missing (CSV, IDX);</li>
 *   <li><b>sparse</b> (CSR): {@code indptr} (rows + 1 offsets), column {@code indices} and
 *       {@code values}; an absent entry is missing, as XGBoost reads libsvm.</li>
 * </ul>
 * Optional per-row {@code weights} and ranking {@code groups} (sizes of consecutive query groups).
 * Tables are immutable by convention: the selection methods copy.
 */
public final class Table {
  private final String source;
  private final int rows;
  private final int cols;
  private final float[] labels;
  private final float[] dense;
  private final long[] indptr;
  private final int[] indices;
  private final float[] values;
  private final float[] weights;
  private final int[] groups;

  private Table(String source, int rows, int cols, float[] labels, float[] dense, long[] indptr, int[] indices,
      float[] values, float[] weights, int[] groups) {
    this.source = source;
    this.rows = rows;
    this.cols = cols;
    this.labels = labels;
    this.dense = dense;
    this.indptr = indptr;
    this.indices = indices;
    this.values = values;
    this.weights = weights;
    this.groups = groups;
  }

  /** A dense table: {@code features.length == rows * cols}, {@code NaN} = missing. */
  public static Table dense(String source, int rows, int cols, float[] features, float[] labels) {
    return dense(source, rows, cols, features, labels, null);
  }

  /** A dense table with per-row weights ({@code weights} may be null). */
  public static Table dense(String source, int rows, int cols, float[] features, float[] labels, float[] weights) {
    if (labels.length != rows) throw new IllegalArgumentException(rows + " rows but " + labels.length + " labels");
    if (weights != null && weights.length != rows) {
      throw new IllegalArgumentException(rows + " rows but " + weights.length + " weights");
    }
    if ((long) rows * cols != features.length) {
      throw new IllegalArgumentException(rows + " x " + cols + " table but " + features.length + " values");
    }
    return new Table(source, rows, cols, labels, features, null, null, null, weights, null);
  }

  /** A sparse (CSR) table; {@code weights} and {@code groups} may be null. */
  public static Table sparse(String source, int rows, int cols, long[] indptr, int[] indices, float[] values,
      float[] labels, float[] weights, int[] groups) {
    if (labels.length != rows || indptr.length != rows + 1) {
      throw new IllegalArgumentException(rows + " rows but " + labels.length + " labels, " + indptr.length + " offsets");
    }
    return new Table(source, rows, cols, labels, null, indptr, indices, values, weights, groups);
  }

  public String source() {
    return source;
  }

  public int rows() {
    return rows;
  }

  public int cols() {
    return cols;
  }

  public boolean isDense() {
    return dense != null;
  }

  /** The labels, one per row (not a copy). */
  public float[] labels() {
    return labels;
  }

  /** Dense values row-major (not a copy); null for a sparse table. */
  public float[] denseValues() {
    return dense;
  }

  public long[] indptr() {
    return indptr;
  }

  public int[] indices() {
    return indices;
  }

  public float[] values() {
    return values;
  }

  /** Per-row weights or null. */
  public float[] weights() {
    return weights;
  }

  /** Sizes of consecutive ranking groups (libsvm {@code qid:}), or null. */
  public int[] groups() {
    return groups;
  }

  /** The same table with {@code cols} columns (sparse tables only widen; used to align train and validation). */
  public Table withCols(int newCols) {
    if (newCols == cols) return this;
    if (dense != null) throw new IllegalArgumentException("a dense table cannot change its column count");
    if (newCols < cols) throw new IllegalArgumentException("cannot narrow a table from " + cols + " to " + newCols);
    return new Table(source, rows, newCols, labels, null, indptr, indices, values, weights, groups);
  }

  /** The first {@code n} rows (the table itself when it has no more). Ranking groups are cut with them. */
  public Table head(int n) {
    if (n >= rows) return this;
    float[] l = Arrays.copyOf(labels, n);
    float[] w = weights == null ? null : Arrays.copyOf(weights, n);
    int[] g = groups == null ? null : cutGroups(groups, n);
    if (dense != null) {
      return new Table(source, n, cols, l, Arrays.copyOf(dense, n * cols), null, null, null, w, g);
    }
    int nnz = (int) indptr[n];
    return new Table(source, n, cols, l, null, Arrays.copyOf(indptr, n + 1), Arrays.copyOf(indices, nnz),
        Arrays.copyOf(values, nnz), w, g);
  }

  /**
   * The rows {@code i} with {@code i % world == rank}, in order (a rank's shard for distributed
   * training). Tables with ranking groups are sharded by whole groups instead (group {@code j} goes
   * to rank {@code j % world}), since a query must not be split.
   */
  public Table shard(int rank, int world) {
    if (world <= 1) return this;
    if (groups != null) return shardGroups(rank, world);
    int n = 0;
    for (int i = rank; i < rows; i += world) n++;
    int[] pick = new int[n];
    for (int i = rank, k = 0; i < rows; i += world, k++) pick[k] = i;
    return select(pick, null);
  }

  private Table shardGroups(int rank, int world) {
    int total = 0;
    int kept = 0;
    for (int j = 0; j < groups.length; j++) {
      if (j % world == rank) {
        total += groups[j];
        kept++;
      }
    }
    int[] pick = new int[total];
    int[] g = new int[kept];
    int row = 0;
    for (int j = 0, k = 0, gi = 0; j < groups.length; j++) {
      if (j % world == rank) {
        for (int i = 0; i < groups[j]; i++) pick[k++] = row + i;
        g[gi++] = groups[j];
      }
      row += groups[j];
    }
    return select(pick, g);
  }

  private Table select(int[] pick, int[] newGroups) {
    int n = pick.length;
    float[] l = new float[n];
    float[] w = weights == null ? null : new float[n];
    for (int k = 0; k < n; k++) {
      l[k] = labels[pick[k]];
      if (w != null) w[k] = weights[pick[k]];
    }
    if (dense != null) {
      float[] d = new float[n * cols];
      for (int k = 0; k < n; k++) System.arraycopy(dense, pick[k] * cols, d, k * cols, cols);
      return new Table(source, n, cols, l, d, null, null, null, w, newGroups);
    }
    long nnz = 0;
    for (int i : pick) nnz += indptr[i + 1] - indptr[i];
    long[] p = new long[n + 1];
    int[] idx = new int[(int) nnz];
    float[] v = new float[(int) nnz];
    int at = 0;
    for (int k = 0; k < n; k++) {
      int from = (int) indptr[pick[k]];
      int len = (int) (indptr[pick[k] + 1] - from);
      System.arraycopy(indices, from, idx, at, len);
      System.arraycopy(values, from, v, at, len);
      at += len;
      p[k + 1] = at;
    }
    return new Table(source, n, cols, l, null, p, idx, v, w, newGroups);
  }

  private static int[] cutGroups(int[] groups, int n) {
    int[] out = new int[groups.length];
    int k = 0;
    int left = n;
    for (int g : groups) {
      if (left <= 0) break;
      out[k++] = Math.min(g, left);
      left -= g;
    }
    return Arrays.copyOf(out, k);
  }

  @Override
  public String toString() {
    return String.format("%s: %d rows x %d features (%s)", source, rows, cols, dense != null ? "dense" : "sparse");
  }
}

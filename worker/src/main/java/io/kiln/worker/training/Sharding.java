package io.kiln.worker.training;

import java.util.SplittableRandom;

/**
 * How data-parallel ranks split each epoch. Every rank computes the same permutation of
 * {@code 0..n-1} for an epoch, seeded by {@code (seed, epoch)}; optimizer step {@code s} consumes
 * the global batch {@code perm[s*B*W .. (s+1)*B*W)}, of which rank {@code r} takes
 * {@code perm[s*B*W + r*B .. s*B*W + (r+1)*B)}. An epoch has {@code floor(n / (B*W))} steps: the
 * last partial global batch is dropped (as {@code drop_last} does), so ranks never see unequal
 * batches and every step averages gradients over exactly {@code B*W} samples.
 */
public final class Sharding {
  private Sharding() {}

  /** Optimizer steps in one epoch of {@code n} samples with per-rank batch {@code batch} over {@code world} ranks. */
  public static int stepsPerEpoch(int n, int batch, int world) {
    if (n <= 0 || batch <= 0 || world <= 0) throw new IllegalArgumentException("n, batch and world must be positive");
    return (int) (n / ((long) batch * world));
  }

  /** The epoch's permutation: identical on every rank for the same {@code (seed, epoch)} (Fisher-Yates). */
  public static int[] permutation(int n, long seed, int epoch) {
    int[] p = new int[n];
    for (int i = 0; i < n; i++) p[i] = i;
    SplittableRandom rnd = new SplittableRandom(mix(seed, epoch));
    for (int i = n - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Offset into the permutation where rank {@code rank}'s batch of step {@code step} starts. */
  public static long shardStart(int step, int batch, int rank, int world) {
    return (long) step * batch * world + (long) rank * batch;
  }

  /** The sample indices rank {@code rank} trains on at step {@code step} (0-based) of an epoch. */
  public static long[] shard(int[] permutation, int step, int batch, int rank, int world) {
    if (rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " outside 0.." + (world - 1));
    long start = shardStart(step, batch, rank, world);
    if (start + batch > permutation.length) {
      throw new IllegalArgumentException("step " + step + " is beyond the epoch (" + permutation.length + " samples)");
    }
    long[] idx = new long[batch];
    for (int i = 0; i < batch; i++) idx[i] = permutation[(int) start + i];
    return idx;
  }

  /**
   * Rank {@code rank}'s indices for a whole epoch, step after step: {@code shard(permutation, 0, ...)},
   * then step 1's, and so on ({@code steps * batch} indices). Training gathers these rows once per
   * epoch and takes step {@code s} as rows {@code [s*batch, (s+1)*batch)}.
   */
  public static long[] epochShard(int[] permutation, int steps, int batch, int rank, int world) {
    long[] idx = new long[Math.multiplyExact(steps, batch)];
    for (int s = 0; s < steps; s++) {
      long[] part = shard(permutation, s, batch, rank, world);
      System.arraycopy(part, 0, idx, s * batch, batch);
    }
    return idx;
  }

  /**
   * One optimizer step of an elastic job, where the world size may change between steps: the step
   * starting at sample {@code offset} of the epoch consumes {@code globalCount = min(batch*world,
   * n - offset)} samples, {@code perm[offset .. offset+globalCount)}. A full step gives rank r the
   * rows {@code [offset + r*batch, +batch)} (as {@link #shard}); the epoch's last, partial step splits
   * what is left as evenly as possible (sizes differ by at most one, possibly zero), so every sample
   * of the epoch is used exactly once whatever the world sizes were.
   *
   * @param start first position in the permutation of this rank's rows
   * @param count this rank's rows (0..batch)
   */
  public record Slice(long offset, int globalCount, long start, int count) {
    public boolean full(int batch, int world) {
      return globalCount == (long) batch * world;
    }
  }

  public static Slice slice(long offset, int n, int batch, int world, int rank) {
    if (offset < 0 || offset >= n) throw new IllegalArgumentException("offset " + offset + " outside the epoch of " + n);
    if (rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " outside 0.." + (world - 1));
    int global = (int) Math.min((long) batch * world, n - offset);
    if (global == (long) batch * world) return new Slice(offset, global, offset + (long) rank * batch, batch);
    int base = global / world;
    int extra = global % world;
    return new Slice(offset, global, offset + (long) rank * base + Math.min(rank, extra), base + (rank < extra ? 1 : 0));
  }

  /**
   * A sample's contribution to an epoch's accounting checksum: the sum over the samples used must
   * equal {@link #epochChecksum} exactly once each (a skipped or repeated sample changes it).
   */
  public static long sampleHash(int sample) {
    long z = sample * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /** The checksum of an epoch that used each of {@code n} samples exactly once. */
  public static long epochChecksum(int n) {
    long sum = 0;
    for (int i = 0; i < n; i++) sum += sampleHash(i);
    return sum;
  }

  private static long mix(long seed, int epoch) {
    long z = seed * 0x9E3779B97F4A7C15L + epoch * 0xBF58476D1CE4E5B9L + 0x94D049BB133111EBL;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}

package io.kiln.worker.algorithms.group;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.collective.Collective;
import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.task.TaskRunner;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;

/**
 * The ranks of a plain-Java built-in ({@code linear-learner}, {@code pca}, {@code kmeans}) joined
 * into one of Kiln's TCP ring collectives, met through the coordinator's rendezvous as the DJL
 * training loop's ranks are. One rank (world size 1) is a group too, with no sockets, so each
 * algorithm has one code path.
 *
 * <p>Kiln's collectives reduce float32. Gradients are fine in float32 ({@link #sumFloats}); sums of
 * statistics (k-means' cluster sums, PCA's X^T X) are not, so {@link #sumDoubles} gathers every
 * rank's doubles exactly (each split into three 22-bit integers, which float32 holds exactly, sent
 * by broadcast) and adds them in rank order: every rank gets the same double-precision result.
 */
public final class RankGroup implements AutoCloseable {
  public static final String BACKEND = "ring";
  /** The least time a rank waits in a collective for its peers. */
  public static final Duration COLLECTIVE_TIMEOUT = Duration.ofMinutes(10);

  private final int rank;
  private final int world;
  private final Collective collective;

  private RankGroup(int rank, int world, Collective collective) {
    this.rank = rank;
    this.world = world;
    this.collective = collective;
  }

  /** A group of one: every collective returns its input. */
  public static RankGroup solo() {
    return new RankGroup(0, 1, null);
  }

  /** A group over an open collective (its rank and world size); closing the group closes it. */
  public static RankGroup of(Collective collective) {
    return new RankGroup(collective.rank(), collective.worldSize(), collective);
  }

  /** Joins the task's ranks (blocks until all have reached the rendezvous); a group of one when world size is 1. */
  public static RankGroup join(TaskRunner.Context ctx) throws Exception {
    int world = Math.max(1, ctx.assignment().getWorldSize());
    if (world == 1) return solo();
    int rank = ctx.assignment().getRank();
    Config config = config();
    String host = config.hasPath("kiln.cluster.host") ? config.getString("kiln.cluster.host") : "127.0.0.1";
    Duration timeout = config.hasPath("kiln.worker.rendezvous-timeout")
        ? config.getDuration("kiln.worker.rendezvous-timeout") : Duration.ofSeconds(120);
    // Ranks compute for long stretches between collectives (a PCA scatter matrix, a k-means pass
    // over a large shard), and one may be slower than another: wait longer than the DJL loop's
    // per-step default before calling a peer hung. A peer that dies closes its sockets and fails
    // the others at once, not after this.
    CollectiveOptions options = CollectiveOptions.defaults().withTimeout(max(timeout, COLLECTIVE_TIMEOUT));
    ServerSocketChannel listener = RingCollective.listen(host + ":0", options);
    try {
      int port = ((InetSocketAddress) listener.getLocalAddress()).getPort();
      GroupSpec spec = ctx.rendezvous().join(TaskRendezvous.newBuilder().setRank(rank)
          .setDataAddress(host + ":" + port).setBackend(BACKEND).build(), timeout);
      if (spec.getDataAddressesCount() != world) {
        throw new IllegalStateException("the group has " + spec.getDataAddressesCount() + " ranks, this task expects "
            + world);
      }
      return new RankGroup(rank, world, RingCollective.open(rank, spec.getDataAddressesList(),
          options.withGeneration(spec.getGeneration()), listener));
    } catch (Exception | Error e) {
      listener.close();
      throw e;
    }
  }

  public int rank() {
    return rank;
  }

  public int world() {
    return world;
  }

  /** In place: every rank gets the float32 sum of {@code v} over the ranks (identical on every rank). */
  public void sumFloats(float[] v) {
    if (world == 1 || v.length == 0) return;
    FloatBuffer b = ByteBuffer.allocateDirect(v.length * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
    b.put(v).flip();
    collective.allReduceSum(b, v.length);
    b.get(v);
  }

  /** Every rank's {@code v} (all of the same length), indexed by rank; exact. */
  public double[][] gather(double[] v) {
    double[][] all = new double[world][];
    if (world == 1) {
      all[0] = v.clone();
      return all;
    }
    int n = v.length;
    FloatBuffer b = ByteBuffer.allocateDirect(Math.max(1, 3 * n) * Float.BYTES).order(ByteOrder.nativeOrder())
        .asFloatBuffer();
    for (int r = 0; r < world; r++) {
      b.clear();
      if (r == rank) encode(v, b);
      b.rewind();
      if (n > 0) collective.broadcast(b, 3 * n, r);
      all[r] = decode(b, n);
    }
    return all;
  }

  /** The double-precision sum over the ranks, added in rank order (the same on every rank). */
  public double[] sumDoubles(double[] v) {
    if (world == 1) return v.clone();
    double[][] all = gather(v);
    double[] s = all[0];
    for (int r = 1; r < world; r++) for (int i = 0; i < s.length; i++) s[i] += all[r][i];
    return s;
  }

  /** Rank {@code root}'s {@code v} on every rank (exact; {@code v} must have the same length everywhere). */
  public double[] broadcast(double[] v, int root) {
    if (world == 1) return v.clone();
    FloatBuffer b = ByteBuffer.allocateDirect(Math.max(1, 3 * v.length) * Float.BYTES)
        .order(ByteOrder.nativeOrder()).asFloatBuffer();
    if (rank == root) encode(v, b);
    b.rewind();
    if (v.length > 0) collective.broadcast(b, 3 * v.length, root);
    return decode(b, v.length);
  }

  /** True on every rank when {@code mine} is true on any rank (stop requests decided together). */
  public boolean any(boolean mine) {
    if (world == 1) return mine;
    float[] f = {mine ? 1 : 0};
    sumFloats(f);
    return f[0] > 0;
  }

  // A double's 64 bits as three integers of 22, 21 and 21 bits: each is a float32 exactly, and a
  // broadcast copies them unchanged (no NaN payloads or signalling bits to lose).
  private static void encode(double[] v, FloatBuffer out) {
    for (double d : v) {
      long bits = Double.doubleToRawLongBits(d);
      out.put((float) (bits >>> 42));
      out.put((float) ((bits >>> 21) & 0x1FFFFF));
      out.put((float) (bits & 0x1FFFFF));
    }
  }

  private static double[] decode(FloatBuffer in, int n) {
    in.rewind();
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      long hi = (long) in.get();
      long mid = (long) in.get();
      long lo = (long) in.get();
      v[i] = Double.longBitsToDouble((hi << 42) | (mid << 21) | lo);
    }
    return v;
  }

  @Override
  public void close() {
    if (collective != null) collective.close();
  }

  private static Duration max(Duration a, Duration b) {
    return a.compareTo(b) >= 0 ? a : b;
  }

  private static Config config() {
    try {
      return ConfigFactory.load();
    } catch (RuntimeException e) {
      return ConfigFactory.empty();
    }
  }
}

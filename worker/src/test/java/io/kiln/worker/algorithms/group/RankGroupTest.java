package io.kiln.worker.algorithms.group;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** RankGroup's exact double exchange over a real 3-rank TCP ring. */
public class RankGroupTest {
  static final double[] AWKWARD = {0.1, -0.0, 1e300, -1e-310 /* subnormal */, Double.NaN, Double.NEGATIVE_INFINITY,
      Math.PI, Double.MIN_VALUE, Double.MAX_VALUE, 123456789.123456789};

  public interface RankBody<T> {
    T run(RankGroup g) throws Exception;
  }

  public static <T> List<T> onRanks(int world, RankBody<T> body) throws Exception {
    CollectiveOptions options = CollectiveOptions.defaults();
    List<ServerSocketChannel> listeners = new ArrayList<>();
    List<String> addresses = new ArrayList<>();
    for (int r = 0; r < world; r++) {
      ServerSocketChannel l = RingCollective.listen("127.0.0.1:0", options);
      listeners.add(l);
      addresses.add("127.0.0.1:" + ((InetSocketAddress) l.getLocalAddress()).getPort());
    }
    ExecutorService pool = Executors.newFixedThreadPool(world);
    try {
      List<Future<T>> fs = new ArrayList<>();
      for (int r = 0; r < world; r++) {
        int rank = r;
        fs.add(pool.submit(() -> {
          try (RankGroup g = RankGroup.of(RingCollective.open(rank, addresses, options, listeners.get(rank)))) {
            return body.run(g);
          }
        }));
      }
      List<T> out = new ArrayList<>();
      for (Future<T> f : fs) out.add(f.get());
      return out;
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void gatherAndBroadcastKeepEveryBit() throws Exception {
    List<double[][]> gathered = onRanks(3, g -> {
      double[] mine = AWKWARD.clone();
      mine[0] += g.rank();
      return g.gather(mine);
    });
    for (double[][] all : gathered) {
      for (int r = 0; r < 3; r++) {
        for (int i = 0; i < AWKWARD.length; i++) {
          double want = i == 0 ? AWKWARD[0] + r : AWKWARD[i];
          assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(all[r][i]), "rank " + r + " #" + i);
        }
      }
    }
    List<double[]> b = onRanks(3, g -> g.broadcast(g.rank() == 1 ? AWKWARD : new double[AWKWARD.length], 1));
    for (double[] v : b) {
      for (int i = 0; i < v.length; i++) {
        assertEquals(Double.doubleToRawLongBits(AWKWARD[i]), Double.doubleToRawLongBits(v[i]));
      }
    }
  }

  @Test
  void sumsAreDoublePrecisionAndIdenticalOnEveryRank() throws Exception {
    // 1 + 1e-12 per rank: a float32 sum would lose the 1e-12 entirely
    List<double[]> sums = onRanks(3, g -> g.sumDoubles(new double[] {1 + 1e-12, g.rank()}));
    for (double[] s : sums) {
      assertEquals(3 + 3e-12, s[0], 1e-15);
      assertEquals(3.0, s[1]);
      assertArrayEquals(sums.get(0), s);
    }
    List<float[]> f = onRanks(3, g -> {
      float[] v = {1, g.rank()};
      g.sumFloats(v);
      return v;
    });
    for (float[] v : f) assertArrayEquals(new float[] {3, 3}, v);
    assertTrue(onRanks(3, g -> g.any(g.rank() == 2)).stream().allMatch(x -> x));
    assertFalse(onRanks(3, g -> g.any(false)).stream().anyMatch(x -> x));
  }

  @Test
  void aGroupOfOneReturnsItsInput() {
    RankGroup g = RankGroup.solo();
    assertArrayEquals(AWKWARD, g.sumDoubles(AWKWARD));
    assertEquals(1, g.gather(AWKWARD).length);
    assertTrue(g.any(true));
  }
}

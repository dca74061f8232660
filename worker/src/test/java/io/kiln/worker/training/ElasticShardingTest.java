package io.kiln.worker.training;

import static org.junit.jupiter.api.Assertions.*;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** Elastic steps cover an epoch exactly once whatever the world size does between steps. */
class ElasticShardingTest {

  @Test
  void ranksOfAStepTileItsGlobalBatch() {
    for (int world = 1; world <= 5; world++) {
      for (int remaining : new int[] {1, 3, 7, 64 * world - 1, 64 * world, 64 * world + 5}) {
        int n = 1000;
        long offset = n - remaining;
        long next = -1;
        int total = 0;
        for (int r = 0; r < world; r++) {
          Sharding.Slice s = Sharding.slice(offset, n, 64, world, r);
          if (r == 0) assertEquals(offset, s.start());
          else assertEquals(next, s.start(), "rank " + r + " starts where rank " + (r - 1) + " ended");
          next = s.start() + s.count();
          total += s.count();
          assertTrue(s.count() <= 64);
        }
        assertEquals(Math.min(64L * world, remaining), total);
      }
    }
  }

  @Test
  void changingWorldSizesUseEverySampleOnce() {
    Random rnd = new Random(7);
    for (int trial = 0; trial < 50; trial++) {
      int n = 500 + rnd.nextInt(5000);
      int batch = 1 + rnd.nextInt(70);
      int[] perm = Sharding.permutation(n, trial, 1);
      int[] used = new int[n];
      long offset = 0;
      long checksum = 0;
      int world = 1 + rnd.nextInt(4);
      while (offset < n) {
        if (rnd.nextInt(10) == 0) world = 1 + rnd.nextInt(4); // a member left or joined
        int global = 0;
        for (int r = 0; r < world; r++) {
          Sharding.Slice s = Sharding.slice(offset, n, batch, world, r);
          for (long i = s.start(); i < s.start() + s.count(); i++) used[perm[(int) i]]++;
          global = s.globalCount();
        }
        for (long i = offset; i < offset + global; i++) checksum += Sharding.sampleHash(perm[(int) i]);
        offset += global;
      }
      for (int i = 0; i < n; i++) assertEquals(1, used[i], "sample " + i + " of " + n);
      assertEquals(Sharding.epochChecksum(n), checksum);
    }
  }

  @Test
  void checksumNoticesASkippedOrRepeatedSample() {
    long all = Sharding.epochChecksum(100);
    assertNotEquals(all, all - Sharding.sampleHash(42));
    assertNotEquals(all, all + Sharding.sampleHash(42));
    assertNotEquals(all, all - Sharding.sampleHash(42) + Sharding.sampleHash(43));
  }

  @Test
  void rejectsPositionsOutsideTheEpoch() {
    assertThrows(IllegalArgumentException.class, () -> Sharding.slice(100, 100, 8, 2, 0));
    assertThrows(IllegalArgumentException.class, () -> Sharding.slice(0, 100, 8, 2, 2));
  }
}

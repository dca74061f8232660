package io.kiln.worker.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ShardingTest {

  @Test
  void stepsDropTheLastPartialGlobalBatch() {
    assertEquals(937, Sharding.stepsPerEpoch(60_000, 64, 1));
    assertEquals(468, Sharding.stepsPerEpoch(60_000, 64, 2));
    assertEquals(2, Sharding.stepsPerEpoch(10, 5, 1));
    assertEquals(0, Sharding.stepsPerEpoch(10, 6, 2));
  }

  @Test
  void permutationIsDeterministicPerSeedAndEpoch() {
    int[] a = Sharding.permutation(1000, 7, 1);
    assertArrayEquals(a, Sharding.permutation(1000, 7, 1));
    assertFalse(Arrays.equals(a, Sharding.permutation(1000, 7, 2)), "epochs differ");
    assertFalse(Arrays.equals(a, Sharding.permutation(1000, 8, 1)), "seeds differ");
    int[] sorted = a.clone();
    Arrays.sort(sorted);
    for (int i = 0; i < sorted.length; i++) assertEquals(i, sorted[i]);
  }

  @Test
  void ranksAreDisjointAndCoverTheEpochsUsedSamples() {
    for (int world : new int[] {1, 2, 3, 4, 7}) {
      int n = 1003;
      int batch = 16;
      int[] perm = Sharding.permutation(n, 42, 3);
      int steps = Sharding.stepsPerEpoch(n, batch, world);
      Set<Long> seen = new HashSet<>();
      for (int s = 0; s < steps; s++) {
        for (int r = 0; r < world; r++) {
          long[] shard = Sharding.shard(perm, s, batch, r, world);
          assertEquals(batch, shard.length);
          for (long i : shard) assertTrue(seen.add(i), "index " + i + " used twice (world " + world + ")");
        }
      }
      // the union is exactly the first steps*batch*world entries of the epoch's permutation
      Set<Long> expected = new HashSet<>();
      for (int i = 0; i < steps * batch * world; i++) expected.add((long) perm[i]);
      assertEquals(expected, seen);
      assertEquals(n - n % (batch * world), seen.size());
    }
  }

  @Test
  void rankShardFollowsTheDocumentedFormula() {
    int[] perm = Sharding.permutation(500, 1, 1);
    long[] shard = Sharding.shard(perm, 3, 10, 1, 4);
    // step 3 of world 4, batch 10: global offset 3*10*4 = 120, rank 1 takes [130, 140)
    for (int i = 0; i < 10; i++) assertEquals(perm[130 + i], shard[i]);
    long[] epoch = Sharding.epochShard(perm, Sharding.stepsPerEpoch(500, 10, 4), 10, 1, 4);
    assertArrayEquals(shard, Arrays.copyOfRange(epoch, 30, 40));
  }

  @Test
  void invalidArgumentsFail() {
    int[] perm = Sharding.permutation(100, 0, 1);
    assertThrows(IllegalArgumentException.class, () -> Sharding.shard(perm, 0, 10, 2, 2));
    assertThrows(IllegalArgumentException.class, () -> Sharding.shard(perm, 10, 10, 0, 1));
    assertThrows(IllegalArgumentException.class, () -> Sharding.stepsPerEpoch(100, 0, 1));
  }
}

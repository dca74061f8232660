package io.kiln.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RingCollectiveTest {

    private static final CollectiveOptions SMALL_CHUNKS = CollectiveOptions.defaults()
            .withChunkBytes(4096).withSmallMessageBytes(1024);

    /** Rank r's value at index i: integer-valued, so float sums are exact. */
    private static float value(int r, int i, int seed) {
        return ((i * 31 + r * 7 + seed) % 1001) - 500;
    }

    private static void checkAllReduce(List<RingCollective> ring, int count, int seed, boolean floatApi)
            throws Exception {
        int n = ring.size();
        List<ByteBuffer> bufs = Rings.parallel(n, r -> () -> {
            ByteBuffer b = Rings.direct(count + 3);
            for (int i = 0; i < count + 3; i++) {
                b.putFloat(i * 4, i < count ? value(r, i, seed) : 12345f);
            }
            if (floatApi) {
                FloatBuffer fb = b.asFloatBuffer();
                ring.get(r).allReduceSum(fb, count);
            } else {
                ring.get(r).allReduceSum(b, count);
            }
            return b;
        });
        for (int r = 0; r < n; r++) {
            ByteBuffer b = bufs.get(r);
            for (int i = 0; i < count; i++) {
                float want = 0;
                for (int q = 0; q < n; q++) {
                    want += value(q, i, seed);
                }
                assertEquals(want, b.getFloat(i * 4), "rank " + r + " index " + i + " of " + count + " n=" + n);
            }
            for (int i = count; i < count + 3; i++) {
                assertEquals(12345f, b.getFloat(i * 4), "bytes beyond count must be untouched");
            }
        }
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void allReduceMatchesSerialSumFor1To5Ranks(boolean shm) throws Exception {
        Random rnd = new Random(42);
        int[] fixed = {0, 1, 2, 3, 5, 7, 255, 256, 1023, 1025, 4099};
        for (int n = 1; n <= 5; n++) {
            List<RingCollective> ring = Rings.open(n, SMALL_CHUNKS.withSharedMemory(shm));
            for (RingCollective c : ring) {
                assertEquals(n == 1 ? "none" : shm ? "shm" : "tcp", c.transportToNext());
                assertEquals(c.transportToNext(), c.transportFromPrev());
            }
            try {
                for (int count : fixed) {
                    checkAllReduce(ring, count, count + n, count % 2 == 0);
                }
                for (int t = 0; t < 4; t++) {
                    int count = 1 + rnd.nextInt(20_000);
                    checkAllReduce(ring, count, t, t % 2 == 1);
                }
            } finally {
                Rings.closeAll(ring);
            }
        }
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void largeAllReduceWithDefaultOptions(boolean shm) throws Exception {
        List<RingCollective> ring = Rings.open(3, CollectiveOptions.defaults().withSharedMemory(shm));
        try {
            checkAllReduce(ring, (3 << 20) + 7, 1, false);
            checkAllReduce(ring, 100_001, 2, true);
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void randomFloatsAreBitIdenticalOnAllRanksAndCloseToSerialSum() throws Exception {
        int n = 4;
        int count = 50_000;
        List<RingCollective> ring = Rings.open(n, SMALL_CHUNKS);
        try {
            float[][] in = new float[n][count];
            Random rnd = new Random(7);
            for (float[] a : in) {
                for (int i = 0; i < count; i++) {
                    a[i] = (float) rnd.nextGaussian();
                }
            }
            List<ByteBuffer> out = Rings.parallel(n, r -> () -> {
                ByteBuffer b = Rings.direct(count);
                b.asFloatBuffer().put(in[r]);
                ring.get(r).allReduceSum(b, count);
                return b;
            });
            for (int i = 0; i < count; i++) {
                double want = 0;
                for (int q = 0; q < n; q++) {
                    want += in[q][i];
                }
                float got = out.get(0).getFloat(i * 4);
                assertEquals(want, got, 1e-4 * (1 + Math.abs(want)));
                for (int r = 1; r < n; r++) {
                    assertEquals(Float.floatToRawIntBits(got), Float.floatToRawIntBits(out.get(r).getFloat(i * 4)),
                            "ranks must agree bit for bit");
                }
            }
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void averageHeapBuffersPositionsAndByteOrder() throws Exception {
        int n = 2;
        List<RingCollective> ring = Rings.open(n, SMALL_CHUNKS);
        try {
            Rings.parallel(n, r -> () -> {
                // heap FloatBuffer with a non-zero position
                FloatBuffer heap = FloatBuffer.allocate(10);
                heap.position(2);
                for (int i = 2; i < 10; i++) {
                    heap.put(i, r == 0 ? 2 * i : 0);
                }
                ring.get(r).allReduceAverage(heap, 8);
                for (int i = 2; i < 10; i++) {
                    assertEquals(i, heap.get(i), 0f);
                }
                assertEquals(2, heap.position());
                // big-endian direct ByteBuffer, large enough for the pipelined path
                ByteBuffer be = ByteBuffer.allocateDirect(4 * 5000).order(ByteOrder.BIG_ENDIAN);
                for (int i = 0; i < 5000; i++) {
                    be.putFloat(i * 4, i + r);
                }
                ring.get(r).allReduceSum(be, 5000);
                for (int i = 0; i < 5000; i++) {
                    assertEquals(2 * i + 1, be.getFloat(i * 4), 0f);
                }
                // heap ByteBuffer
                ByteBuffer hb = ByteBuffer.allocate(4 * 3000);
                for (int i = 0; i < 3000; i++) {
                    hb.putFloat(i * 4, 1);
                }
                ring.get(r).allReduceSum(hb, 3000);
                assertEquals(2f, hb.getFloat(4 * 2999), 0f);
                return null;
            });
        } finally {
            Rings.closeAll(ring);
        }
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void broadcastFromEveryRoot(boolean shm) throws Exception {
        for (int n : new int[] {1, 2, 3, 5}) {
            List<RingCollective> ring = Rings.open(n, SMALL_CHUNKS.withSharedMemory(shm));
            try {
                for (int root = 0; root < n; root++) {
                    for (int count : new int[] {0, 1, 100, 3001}) {
                        int rt = root;
                        List<ByteBuffer> out = Rings.parallel(n, r -> () -> {
                            ByteBuffer b = Rings.direct(count);
                            for (int i = 0; i < count; i++) {
                                b.putFloat(i * 4, r == rt ? i * 0.5f + rt : -1);
                            }
                            if (count % 2 == 0) {
                                ring.get(r).broadcast(b, count, rt);
                            } else {
                                ring.get(r).broadcast(b.asFloatBuffer(), count, rt);
                            }
                            return b;
                        });
                        for (int r = 0; r < n; r++) {
                            for (int i = 0; i < count; i++) {
                                assertEquals(i * 0.5f + root, out.get(r).getFloat(i * 4), 0f);
                            }
                        }
                    }
                }
            } finally {
                Rings.closeAll(ring);
            }
        }
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void barrierWaitsForTheSlowestRank(boolean shm) throws Exception {
        int n = 3;
        List<RingCollective> ring = Rings.open(n, SMALL_CHUNKS.withSharedMemory(shm));
        try {
            long sleepMs = 300;
            List<Long> exits = Rings.parallel(n, r -> () -> {
                if (r == 2) {
                    Thread.sleep(sleepMs);
                }
                long t0 = System.nanoTime();
                ring.get(r).barrier();
                return System.nanoTime() - t0;
            });
            assertTrue(exits.get(0) >= (sleepMs - 50) * 1_000_000L, "rank 0 left the barrier too early: " + exits);
            assertTrue(exits.get(1) >= (sleepMs - 50) * 1_000_000L, "rank 1 left the barrier too early: " + exits);
            for (int k = 0; k < 50; k++) {
                Rings.parallel(n, r -> () -> {
                    ring.get(r).barrier();
                    return null;
                });
            }
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void mixedTransportsInOneRing() throws Exception {
        // rank 1 refuses shared memory: links 0->1 and 1->2 use TCP, 2->0 and 3->0... use shared memory
        int n = 4;
        java.nio.channels.ServerSocketChannel[] ls = Rings.listeners(n);
        List<String> addrs = Rings.addresses(ls);
        List<RingCollective> ring = Rings.parallel(n, r -> () -> RingCollective.open(r, addrs,
                SMALL_CHUNKS.withSharedMemory(r != 1), ls[r]));
        try {
            assertEquals("tcp", ring.get(0).transportToNext());
            assertEquals("shm", ring.get(0).transportFromPrev());
            assertEquals("tcp", ring.get(2).transportFromPrev());
            assertEquals("shm", ring.get(2).transportToNext());
            for (int count : new int[] {0, 3, 200, 70_001}) {
                checkAllReduce(ring, count, count, count % 2 == 1);
            }
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void argumentChecks() throws Exception {
        List<RingCollective> ring = Rings.open(1, CollectiveOptions.defaults());
        RingCollective c = ring.get(0);
        assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(Rings.direct(2), 3));
        assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(Rings.direct(2), -1));
        assertThrows(IllegalArgumentException.class, () -> c.broadcast(Rings.direct(2), 2, 1));
        c.allReduceSum(Rings.direct(2), 2); // world 1: no-op
        c.barrier();
        c.close();
        assertThrows(CollectiveException.class, c::barrier);
    }
}

package io.kiln.collective;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

/** Rank of a ring in its own JVM, started by {@link MultiProcessRingTest}. */
public final class RingChild {
    static final int[] SIZES = {0, 1, 7, 1000, 100_003, (3 << 20) + 1};

    private RingChild() {
    }

    static float value(int rank, int i) {
        return ((i * 13 + rank * 5) % 511) - 255;
    }

    /** Runs the checked part of the script; returns null when every result was right. */
    static String script(Collective c) {
        int n = c.worldSize();
        for (int size : SIZES) {
            ByteBuffer b = Rings.direct(size);
            for (int i = 0; i < size; i++) {
                b.putFloat(i * 4, value(c.rank(), i));
            }
            c.allReduceSum(b, size);
            for (int i = 0; i < size; i++) {
                float want = 0;
                for (int r = 0; r < n; r++) {
                    want += value(r, i);
                }
                if (b.getFloat(i * 4) != want) {
                    return "rank " + c.rank() + ": all-reduce of " + size + " wrong at " + i;
                }
            }
        }
        for (int root = 0; root < n; root++) {
            ByteBuffer b = Rings.direct(50_000);
            for (int i = 0; i < 50_000; i++) {
                b.putFloat(i * 4, c.rank() == root ? i + root : -1);
            }
            c.broadcast(b, 50_000, root);
            for (int i = 0; i < 50_000; i++) {
                if (b.getFloat(i * 4) != i + root) {
                    return "rank " + c.rank() + ": broadcast from " + root + " wrong at " + i;
                }
            }
        }
        c.barrier();
        return null;
    }

    public static void main(String[] args) {
        int rank = Integer.parseInt(args[0]);
        List<String> addrs = Arrays.asList(args[1].split(","));
        boolean shm = Boolean.parseBoolean(args[2]);
        try (RingCollective c = RingCollective.open(rank, addrs, CollectiveOptions.defaults().withSharedMemory(shm))) {
            String err = script(c);
            System.out.println(err == null ? "CHILD OK" : "CHILD FAILED " + err);
            System.out.flush();
            // then keep all-reducing until the parent kills this process
            ByteBuffer big = Rings.direct(4 << 20);
            while (true) {
                c.allReduceSum(big, 4 << 20);
            }
        } catch (CollectiveException e) {
            System.out.println("CHILD EXCEPTION " + e.getMessage());
            System.exit(3);
        }
    }
}

package io.kiln.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Malformed frames, dead peers, timeouts and misconfiguration fail every rank promptly. */
class RingFailureTest {

    /** Generous timeout: the tests assert that failures arrive long before it. */
    private static final CollectiveOptions OPTS = CollectiveOptions.defaults().withTimeout(Duration.ofSeconds(20))
            .withConnectTimeout(Duration.ofSeconds(10));
    private static final long PROMPT_MS = 5_000;

    private interface RogueScript {
        void play(RoguePeer rogue, int count) throws Exception;
    }

    /** Ranks 1 and 2 are real; rank 0 is the rogue. Returns the exceptions ranks 1 and 2 threw. */
    private static CollectiveException[] withRogue(int count, CollectiveOptions opts, RogueScript script)
            throws Exception {
        ServerSocketChannel[] ls = Rings.listeners(3);
        List<String> addrs = Rings.addresses(ls);
        ExecutorService ex = Executors.newFixedThreadPool(3);
        try {
            RoguePeer rogue = new RoguePeer(0, 3, opts);
            Future<?> rf = ex.submit(() -> {
                rogue.join(ls[0], addrs.get(1));
                return null;
            });
            Future<RingCollective> r1 = ex.submit(() -> RingCollective.open(1, addrs, opts, ls[1]));
            Future<RingCollective> r2 = ex.submit(() -> RingCollective.open(2, addrs, opts, ls[2]));
            rf.get(20, TimeUnit.SECONDS);
            RingCollective c1 = r1.get(20, TimeUnit.SECONDS);
            RingCollective c2 = r2.get(20, TimeUnit.SECONDS);
            long t0 = System.nanoTime();
            Future<CollectiveException> e1 = ex.submit(() -> expectFailure(c1, count));
            Future<CollectiveException> e2 = ex.submit(() -> expectFailure(c2, count));
            script.play(rogue, count);
            CollectiveException[] out = {e1.get(30, TimeUnit.SECONDS), e2.get(30, TimeUnit.SECONDS)};
            long ms = (System.nanoTime() - t0) / 1_000_000;
            rogue.close();
            c1.close();
            c2.close();
            out[0].addSuppressed(new Exception("elapsed " + ms + " ms"));
            return out;
        } finally {
            ex.shutdownNow();
            for (ServerSocketChannel l : ls) {
                l.close();
            }
        }
    }

    private static CollectiveException expectFailure(Collective c, int count) {
        ByteBuffer b = Rings.direct(count);
        long t0 = System.nanoTime();
        try {
            for (int k = 0; k < 1000; k++) {
                c.allReduceSum(b, count);
            }
        } catch (CollectiveException e) {
            long ms = (System.nanoTime() - t0) / 1_000_000;
            if (ms > PROMPT_MS) {
                throw new AssertionError("rank " + c.rank() + " failed only after " + ms + " ms: " + e.getMessage());
            }
            // the group is dead from now on
            CollectiveException again = assertThrows(CollectiveException.class, () -> c.allReduceSum(b, count));
            // a failed group says it is unusable; the rank that was closed itself says it is closed
            assertTrue(again.getMessage().contains("unusable") || again.getMessage().contains("collective is closed"),
                    again.getMessage());
            return e;
        }
        throw new AssertionError("rank " + c.rank() + " never failed");
    }

    private static int expectedLen(int count) {
        // rank 1 receives, in reduce-scatter step 0, segment (1-0-1) mod 3 = 0 of the rogue (rank 0)
        return (int) ((long) count / 3) * 4;
    }

    @Test
    void malformedHeaderFailsEveryRankPromptly() throws Exception {
        int count = 3000;
        CollectiveException[] e = withRogue(count, OPTS, (rogue, n) -> {
            ByteBuffer b = ByteBuffer.allocate(Frames.HEADER_BYTES + expectedLen(n));
            Frames.put(b, OPTS.generation(), 1, 0, Frames.OP_ALLREDUCE, 0, expectedLen(n), n, 0);
            b.putInt(Frames.O_MAGIC, 0xDEADBEEF);
            b.position(0).limit(b.capacity());
            RoguePeer.writeFully(rogue.next, b);
        });
        assertTrue(e[0].getMessage().contains("malformed frame from rank 0"), e[0].getMessage());
        assertTrue(e[0].getMessage().contains("bad magic 0xDEADBEEF"), e[0].getMessage());
        assertEquals(0, e[0].peerRank());
        assertTrue(e[1].getMessage().contains("rank 1") && e[1].getMessage().contains("failed or closed"),
                e[1].getMessage());
    }

    @Test
    void wronglySizedPayloadFailsEveryRankPromptly() throws Exception {
        int count = 3000;
        CollectiveException[] e = withRogue(count, OPTS, (rogue, n) ->
                rogue.send(OPTS.generation(), 1, 0, Frames.OP_ALLREDUCE, expectedLen(n) + 8, n, 0, expectedLen(n) + 8));
        assertTrue(e[0].getMessage().contains("payload length " + (expectedLen(count) + 8)), e[0].getMessage());
        assertTrue(e[1].getMessage().contains("failed or closed"), e[1].getMessage());
    }

    @Test
    void wrongSequenceAndGenerationAreRejected() throws Exception {
        int count = 3000;
        CollectiveException[] e = withRogue(count, OPTS, (rogue, n) ->
                rogue.send(OPTS.generation(), 7, 0, Frames.OP_ALLREDUCE, expectedLen(n), n, 0, expectedLen(n)));
        assertTrue(e[0].getMessage().contains("operation #7 item 0, expected #1 item 0"), e[0].getMessage());
        CollectiveException[] g = withRogue(count, OPTS, (rogue, n) ->
                rogue.send(OPTS.generation() + 1, 1, 0, Frames.OP_ALLREDUCE, expectedLen(n), n, 0, expectedLen(n)));
        assertTrue(g[0].getMessage().contains("generation 1, expected 0"), g[0].getMessage());
    }

    @Test
    void truncatedPayloadFailsEveryRankWithinTheTimeout() throws Exception {
        CollectiveOptions quick = OPTS.withTimeout(Duration.ofMillis(1500));
        int count = 3000;
        long t0 = System.nanoTime();
        CollectiveException[] e = withRogue(count, quick, (rogue, n) ->
                // announces the right length but sends only half of it, then goes silent
                rogue.send(quick.generation(), 1, 0, Frames.OP_ALLREDUCE, expectedLen(n), n, 0, expectedLen(n) / 2));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(e[0].getMessage().contains("timed out after 1500 ms"), e[0].getMessage());
        assertTrue(ms < 1500 + PROMPT_MS, "took " + ms + " ms");
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void peerClosingMidOperationFailsTheOthersPromptly(boolean shm) throws Exception {
        List<RingCollective> ring = Rings.open(3, OPTS.withSharedMemory(shm));
        ExecutorService ex = Executors.newFixedThreadPool(3);
        try {
            int count = 4 << 20; // 16 MiB: pipelined path, long enough to be interrupted
            Future<CollectiveException> e0 = ex.submit(() -> expectFailure(ring.get(0), count));
            Future<CollectiveException> e1 = ex.submit(() -> expectFailure(ring.get(1), count));
            Future<CollectiveException> e2 = ex.submit(() -> expectFailure(ring.get(2), count));
            Thread.sleep(300);
            ring.get(2).close(); // dies in the middle of an all-reduce loop
            assertTrue(e0.get(30, TimeUnit.SECONDS).getMessage().contains("failed or closed"));
            assertTrue(e1.get(30, TimeUnit.SECONDS).getMessage().contains("failed or closed"));
            e2.get(30, TimeUnit.SECONDS);
        } finally {
            ex.shutdownNow();
            Rings.closeAll(ring);
        }
    }

    @ParameterizedTest(name = "sharedMemory={0}")
    @ValueSource(booleans = {true, false})
    void silentPeerTimesOut(boolean shm) throws Exception {
        CollectiveOptions quick = OPTS.withTimeout(Duration.ofMillis(800)).withSharedMemory(shm);
        List<RingCollective> ring = Rings.open(2, quick);
        try {
            long t0 = System.nanoTime();
            CollectiveException e = assertThrows(CollectiveException.class, () -> ring.get(0).allReduceSum(Rings.direct(10), 10));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(e.getMessage().contains("timed out after 800 ms"), e.getMessage());
            assertTrue(ms >= 700 && ms < 800 + 2000, "took " + ms + " ms");
            // rank 1 fails as soon as it calls in: it reads rank 0's unfinished all-reduce frame, or finds
            // the connection closed
            long t1 = System.nanoTime();
            CollectiveException e1 = assertThrows(CollectiveException.class, () -> ring.get(1).barrier());
            assertTrue(e1.getMessage().contains("failed or closed") || e1.getMessage().contains("different collectives"),
                    e1.getMessage());
            assertTrue((System.nanoTime() - t1) / 1_000_000 < 2000);
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void mismatchedCountsFailBothRanks() throws Exception {
        List<RingCollective> ring = Rings.open(2, OPTS);
        try {
            List<String> msgs = Rings.parallel(2, r -> () -> {
                int count = r == 0 ? 1000 : 1001;
                try {
                    ring.get(r).allReduceSum(Rings.direct(count), count);
                } catch (CollectiveException e) {
                    return e.getMessage();
                }
                return "no failure";
            });
            assertTrue(msgs.get(0).contains("different counts") || msgs.get(0).contains("failed or closed"), msgs.get(0));
            assertTrue(msgs.get(1).contains("different counts") || msgs.get(1).contains("failed or closed"), msgs.get(1));
            assertTrue(msgs.get(0).contains("different counts") || msgs.get(1).contains("different counts"),
                    msgs.toString());
        } finally {
            Rings.closeAll(ring);
        }
    }

    @Test
    void generationMismatchIsRefusedAtHandshake() throws Exception {
        ServerSocketChannel[] ls = Rings.listeners(2);
        List<String> addrs = Rings.addresses(ls);
        CollectiveOptions quick = OPTS.withConnectTimeout(Duration.ofSeconds(2));
        List<String> msgs = Rings.parallel(2, r -> () -> {
            try {
                RingCollective.open(r, addrs, quick.withGeneration(r == 0 ? 5 : 6), ls[r]).close();
                return "formed";
            } catch (CollectiveException e) {
                return e.getMessage();
            }
        });
        assertTrue(!msgs.contains("formed"), msgs.toString());
        assertTrue(String.join(" ", msgs).contains("refused the connection: generation mismatch"), msgs.toString());
    }

    @Test
    void connectFailsClearlyWhenNoPeerListens() throws Exception {
        ServerSocketChannel[] ls = Rings.listeners(2);
        List<String> addrs = Rings.addresses(ls);
        ls[1].close(); // rank 1 never shows up
        long t0 = System.nanoTime();
        CollectiveException e = assertThrows(CollectiveException.class, () -> RingCollective.open(0, addrs,
                OPTS.withConnectTimeout(Duration.ofMillis(700)), ls[0]));
        assertTrue(e.getMessage().contains("cannot connect to rank 1"), e.getMessage());
        assertTrue((System.nanoTime() - t0) / 1_000_000 < 3000);
        if (e.peerRank() != 1) {
            fail("peer rank should be 1: " + e.peerRank());
        }
    }
}

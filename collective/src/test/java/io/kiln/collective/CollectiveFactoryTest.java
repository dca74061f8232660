package io.kiln.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.nio.channels.ServerSocketChannel;
import java.util.List;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import io.kiln.collective.nccl.NcclCollective;

/** On a machine without a GPU: auto falls back to the ring with a reason, forced nccl fails clearly. */
class CollectiveFactoryTest {

    @BeforeAll
    static void noGpuHere() {
        assumeFalse(NcclCollective.probe().available(), "NCCL is usable here; the fallback tests need a GPU-less node");
    }

    @Test
    void probeExplainsWhyNcclIsUnavailable() {
        NcclCollective.Availability a = NcclCollective.probe();
        assertTrue(a.detail().contains("libcuda.so.1") || a.detail().contains("libnccl") || a.detail().contains("cudart")
                || a.detail().contains("no CUDA device"), a.detail());
        assertNull(CollectiveFactory.ncclUniqueIdOrNull());
    }

    @Test
    void autoFallsBackToTheRing() throws Exception {
        CollectiveFactory.Resolution r = CollectiveFactory.resolve("auto");
        assertEquals("ring", r.backend());
        assertTrue(r.reason().startsWith("NCCL unavailable ("), r.reason());

        ServerSocketChannel[] ls = Rings.listeners(2);
        List<String> addrs = Rings.addresses(ls);
        for (ServerSocketChannel l : ls) {
            l.close();
        }
        List<Collective> cs = Rings.parallel(2, rank -> () -> CollectiveFactory.create("auto",
                new CollectiveFactory.Spec(rank, addrs, null, 0, CollectiveOptions.defaults())));
        try {
            for (Collective c : cs) {
                assertInstanceOf(RingCollective.class, c);
                assertEquals("ring", c.backend());
            }
            Rings.parallel(2, rank -> () -> {
                java.nio.ByteBuffer b = Rings.direct(3);
                b.putFloat(0, rank + 1);
                cs.get(rank).allReduceSum(b, 3);
                assertEquals(3f, b.getFloat(0));
                return null;
            });
        } finally {
            Rings.closeAll(cs);
        }
    }

    @Test
    void forcedNcclFailsWithAClearError() {
        CollectiveException e = assertThrows(CollectiveException.class, () -> CollectiveFactory.resolve("nccl"));
        assertTrue(e.getMessage().startsWith("collective backend 'nccl' was requested but NCCL cannot be used on this"
                + " node: "), e.getMessage());
        CollectiveException e2 = assertThrows(CollectiveException.class, () -> CollectiveFactory.create("nccl",
                new CollectiveFactory.Spec(0, List.of("127.0.0.1:1"), new byte[128], 0, CollectiveOptions.defaults())));
        assertTrue(e2.getMessage().contains("NCCL cannot be used"), e2.getMessage());
        CollectiveException e3 = assertThrows(CollectiveException.class,
                () -> NcclCollective.open(0, 1, new byte[128], 0));
        assertTrue(e3.getMessage().startsWith("NCCL is not usable in this process: "), e3.getMessage());
        assertThrows(IllegalArgumentException.class, () -> CollectiveFactory.resolve("mpi"));
        assertEquals("ring", CollectiveFactory.resolve("RING").backend());
    }
}

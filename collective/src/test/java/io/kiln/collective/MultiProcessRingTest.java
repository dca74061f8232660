package io.kiln.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/** Two ranks as two real JVM processes: correct results, then SIGKILL of one fails the other promptly. */
class MultiProcessRingTest {

    @Test
    void twoProcessesAgreeAndAKilledPeerFailsTheOtherPromptly() throws Exception {
        for (boolean shm : new boolean[] {true, false}) {
            twoProcesses(shm);
        }
    }

    private void twoProcesses(boolean shm) throws Exception {
        ServerSocketChannel[] ls = Rings.listeners(2);
        List<String> addrs = Rings.addresses(ls);
        ls[1].close(); // the child binds it itself
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        Process child = new ProcessBuilder(java, "-Xmx256m", "-cp", cp, RingChild.class.getName(), "1",
                String.join(",", addrs), String.valueOf(shm)).redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        try (RingCollective c = RingCollective.open(0, addrs, CollectiveOptions.defaults().withSharedMemory(shm), ls[0])) {
            assertEquals(shm ? "shm" : "tcp", c.transportToNext());
            assertNull(RingChild.script(c));
            String line;
            while ((line = out.readLine()) != null && !line.startsWith("CHILD")) {
                System.out.println("[child] " + line);
            }
            assertEquals("CHILD OK", line);

            ByteBuffer big = Rings.direct(4 << 20);
            for (int k = 0; k < 3; k++) {
                c.allReduceSum(big, 4 << 20);
            }
            long[] killedAt = new long[1];
            Thread killer = new Thread(() -> {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                killedAt[0] = System.nanoTime();
                child.destroyForcibly();
            });
            killer.start();
            CollectiveException e = assertThrows(CollectiveException.class, () -> {
                while (true) {
                    c.allReduceSum(big, 4 << 20);
                }
            });
            long ms = (System.nanoTime() - killedAt[0]) / 1_000_000;
            killer.join();
            assertTrue(e.getMessage().contains("rank 1") && e.getMessage().contains("failed or closed"), e.getMessage());
            assertTrue(ms < 3000, "failure reported " + ms + " ms after the kill");
        } finally {
            child.destroyForcibly();
            child.waitFor(10, TimeUnit.SECONDS);
        }
    }
}

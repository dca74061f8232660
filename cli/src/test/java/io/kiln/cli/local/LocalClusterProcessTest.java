package io.kiln.cli.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.sdk.WorkerView;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LocalCluster's process management with stand-in main classes (FakeCoordinator, FakeWorker: tiny
 * JVMs of JDK classes only): start, pid files, readiness wait, attach from another handle,
 * kill / add / restart single nodes, stop, and a failing start. The real coordinator and worker are
 * started by the integration tests in another module.
 */
class LocalClusterProcessTest {
    @TempDir
    Path tmp;

    private LocalCluster.Options.Builder fakeOptions(Path data) throws Exception {
        String testClasses = Paths.get(FakeCoordinator.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        // A real node's classpath is > 4 KiB, and Linux shows only the first 4 KiB of a command line
        // to ProcessHandle.info(): pad ours so that attach() must recognise nodes from that prefix.
        testClasses = testClasses + ":/nonexistent/padding-jar-to-make-the-command-line-long.jar".repeat(100);
        return LocalCluster.Options.builder()
                .repoRoot(tmp)
                .dataDir(data)
                .workers(2)
                .apiPort(0)
                .clusterPort(0)
                .jvmArgs(List.of("-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Xmx64m"))
                .coordinatorClasspath(testClasses)
                .workerClasspath(testClasses)
                .coordinatorMainClass(FakeCoordinator.class.getName())
                .workerMainClass(FakeWorker.class.getName())
                .readyTimeout(Duration.ofSeconds(60))
                .killOnExit(true);
    }

    private static List<String> ids(LocalCluster c) {
        return c.client().cluster().stream().map(WorkerView::id).sorted().collect(Collectors.toList());
    }

    @Test
    void startAttachKillAddRestartStop() throws Exception {
        Path data = tmp.resolve("data");
        LocalCluster.Options options = fakeOptions(data).build();
        try (LocalCluster c = LocalCluster.start(options)) {
            assertTrue(c.isRunning());
            assertEquals(List.of("worker-1", "worker-2"), ids(c));
            assertEquals(3, c.nodes().size());
            for (LocalCluster.Node n : c.nodes()) {
                assertEquals(String.valueOf(n.pid()), Files.readString(data.resolve("local/" + n.name() + ".pid")).trim());
                assertTrue(Files.readString(n.logFile()).contains(LocalCluster.LOG_MARK + "starting " + n.name()));
            }
            assertTrue(LocalCluster.logTail(data.resolve("logs/worker-1.log"), 5).contains("DJL_CACHE_DIR " + tmp.resolve(".cache/djl")));
            assertTrue(Files.isRegularFile(data.resolve("local/cluster.json")));

            // another process (kiln local status / down) sees the same cluster
            LocalCluster attached = LocalCluster.attach(data).orElseThrow();
            assertTrue(attached.isRunning());
            assertEquals(c.apiUrl(), attached.apiUrl());
            assertEquals(c.coordinator().get().pid(), attached.coordinator().get().pid());
            assertEquals(List.of("worker-1", "worker-2"),
                    attached.workers().stream().map(LocalCluster.Node::name).collect(Collectors.toList()));

            // a second start in the same data dir is refused
            LocalClusterException twice = assertThrows(LocalClusterException.class, () -> LocalCluster.start(options));
            assertTrue(twice.getMessage().contains("already running"), twice.getMessage());

            // crash a worker, add another
            LocalCluster.Node w2 = c.killWorker("worker-2", true);
            assertFalse(w2.isAlive());
            assertFalse(Files.exists(w2.pidFile()));
            assertEquals(List.of("worker-1"), ids(c));
            assertEquals("worker-3", c.addWorker().name());
            c.awaitReady(2, Duration.ofSeconds(30), s -> { });
            assertEquals(List.of("worker-1", "worker-3"), ids(c));

            // restart the coordinator alone: new pid, same URL, workers listed again
            long oldPid = c.coordinator().get().pid();
            c.restartCoordinator();
            assertNotEquals(oldPid, c.coordinator().get().pid());
            assertFalse(ProcessHandle.of(oldPid).map(ProcessHandle::isAlive).orElse(false));
            assertEquals(List.of("worker-1", "worker-3"), ids(c));

            // stop from a fresh handle, as `kiln local down` does
            List<LocalCluster.Node> before = c.nodes();
            LocalCluster.attach(data).orElseThrow().stop();
            before.forEach(n -> assertFalse(n.isAlive(), n.name()));
            assertTrue(LocalCluster.attach(data).isEmpty(), "pid files removed");
            assertFalse(Files.exists(data.resolve("local/cluster.json")));
        }
    }

    @Test
    void aNodeThatDiesDuringStartFailsFastWithItsLog() throws Exception {
        Path data = tmp.resolve("data2");
        LocalCluster.Options o = fakeOptions(data).coordinatorProperty("fake.fail", "true").workers(1).build();
        long t0 = System.nanoTime();
        LocalClusterException e = assertThrows(LocalClusterException.class, () -> LocalCluster.start(o));
        assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(30).toNanos(), "did not wait for the timeout");
        assertTrue(e.getMessage().contains("coordinator exited with code 7 during start-up"), e.getMessage());
        assertTrue(e.getMessage().contains("boom: cannot open the journal"), e.getMessage());
        assertEquals(data.resolve("logs/coordinator.log"), e.logFile());
        assertTrue(LocalCluster.attach(data).isEmpty(), "nothing left behind");
    }

    @Test
    void timeoutNamesTheMissingWorkerLog() throws Exception {
        Path data = tmp.resolve("data3");
        // the worker never registers: it runs the coordinator's main class on a taken port... simpler: a worker
        // main class that just sleeps without registering
        LocalCluster.Options o = fakeOptions(data).workers(1).workerMainClass(SilentWorker.class.getName())
                .readyTimeout(Duration.ofSeconds(3)).build();
        LocalClusterException e = assertThrows(LocalClusterException.class, () -> LocalCluster.start(o));
        assertTrue(e.getMessage().contains("not ready after 3 s"), e.getMessage());
        assertTrue(e.getMessage().contains("waiting for workers to join: 0/1"), e.getMessage());
        assertEquals(data.resolve("logs/worker-1.log"), e.logFile());
        assertTrue(e.getMessage().contains("silent worker"), e.getMessage());
        assertTrue(LocalCluster.attach(data).isEmpty());
    }

    /** A worker that never joins. */
    public static final class SilentWorker {
        public static void main(String[] args) throws Exception {
            System.out.println("silent worker: not joining");
            Thread.sleep(Long.MAX_VALUE);
        }
    }
}

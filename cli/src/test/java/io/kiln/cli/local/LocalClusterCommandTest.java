package io.kiln.cli.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** LocalCluster's classpath and command-line assembly: pure functions over a fake repo layout. */
class LocalClusterCommandTest {
    @TempDir
    Path repo;
    Path data;

    @BeforeEach
    void fakeRepo() throws Exception {
        for (String m : List.of("coordinator", "worker")) {
            Files.createDirectories(repo.resolve(m).resolve("target/classes"));
            Files.writeString(repo.resolve(m).resolve("target/classpath.txt"), "/m2/a-" + m + ".jar:/m2/b.jar\n");
        }
        data = repo.resolve("data");
    }

    private LocalCluster.Options.Builder options() {
        return LocalCluster.Options.builder().repoRoot(repo).dataDir(data).javaBin("/jdk/bin/java");
    }

    @Test
    void classpathIsClassesThenMavenRuntimeClasspath() {
        assertEquals(repo.resolve("coordinator/target/classes") + ":/m2/a-coordinator.jar:/m2/b.jar",
                LocalCluster.classpath(repo, "coordinator"));
    }

    @Test
    void classpathToleratesNewlinesAndEmptyFile() throws Exception {
        Files.writeString(repo.resolve("worker/target/classpath.txt"), "/a.jar:\n/b.jar\n\n");
        assertEquals(repo.resolve("worker/target/classes") + ":/a.jar:/b.jar", LocalCluster.classpath(repo, "worker"));
        Files.writeString(repo.resolve("worker/target/classpath.txt"), "");
        assertEquals(repo.resolve("worker/target/classes").toString(), LocalCluster.classpath(repo, "worker"));
    }

    @Test
    void unbuiltModuleSaysHowToBuild() throws Exception {
        Files.delete(repo.resolve("worker/target/classpath.txt"));
        LocalClusterException e = assertThrows(LocalClusterException.class, () -> LocalCluster.classpath(repo, "worker"));
        assertTrue(e.getMessage().contains("worker module is not built"), e.getMessage());
        assertTrue(e.getMessage().contains("./kiln"), e.getMessage());
    }

    @Test
    void coordinatorCommandLine() {
        List<String> cmd = LocalCluster.coordinatorCommand(options().apiPort(7481).clusterPort(25521).build());
        assertEquals(List.of(
                "/jdk/bin/java",
                "-Dkiln.local.node=coordinator",
                "-cp", repo.resolve("coordinator/target/classes") + ":/m2/a-coordinator.jar:/m2/b.jar",
                "-Dkiln.data-dir=" + data,
                "-Dkiln.api.port=7481",
                "-Dkiln.cluster.port=25521",
                "-Dkiln.cluster.seed=127.0.0.1:25521",
                "-Dkiln.journal=h2",
                "io.kiln.coordinator.CoordinatorMain"), cmd);
    }

    @Test
    void postgresJournalAddsTheUrl() {
        List<String> cmd = LocalCluster.coordinatorCommand(options().journal("postgres")
                .postgresUrl("jdbc:postgresql://db:5432/kiln").jvmArgs(List.of("-Xmx512m")).build());
        assertTrue(cmd.contains("-Dkiln.journal=postgres"));
        assertTrue(cmd.contains("-Dkiln.postgres.url=jdbc:postgresql://db:5432/kiln"));
        assertEquals("-Xmx512m", cmd.get(2), "JVM options come before -cp");
        assertFalse(LocalCluster.coordinatorCommand(options().build()).stream().anyMatch(s -> s.contains("postgres")));
    }

    @Test
    void workerCommandLine() {
        // an explicit (here empty) cpu-set replaces the automatic pinning, which depends on the machine
        List<String> cmd = LocalCluster.workerCommand(options().clusterPort(25530).workerProperty("kiln.worker.cpu-set", "")
                .workerProperty("x.y", "z").build(), 3);
        assertEquals(List.of(
                "/jdk/bin/java",
                "-Dkiln.local.node=worker-3",
                "-cp", repo.resolve("worker/target/classes") + ":/m2/a-worker.jar:/m2/b.jar",
                "-Dkiln.cluster.port=0",
                "-Dkiln.cluster.seed=127.0.0.1:25530",
                "-Dkiln.worker.id=worker-3",
                "-Dkiln.worker.cpus=1",
                "-Dkiln.data-dir=" + data,
                "-DDJL_CACHE_DIR=" + repo.resolve(".cache/djl"),
                "-Dai.djl.offline=true",
                "-Dkiln.worker.cpu-set=",
                "-Dx.y=z",
                "io.kiln.worker.WorkerMain"), cmd);
    }

    @Test
    void overridesForTests() {
        LocalCluster.Options o = options().coordinatorClasspath("/cp").coordinatorMainClass("my.Main").build();
        List<String> cmd = LocalCluster.coordinatorCommand(o);
        assertEquals("/cp", cmd.get(cmd.indexOf("-cp") + 1));
        assertEquals("my.Main", cmd.get(cmd.size() - 1));
    }

    @Test
    void unknownRepoRoot() {
        LocalCluster.Options o = LocalCluster.Options.builder().repoRoot(null).dataDir(data).build();
        LocalClusterException e = assertThrows(LocalClusterException.class, () -> LocalCluster.coordinatorCommand(o));
        assertTrue(e.getMessage().contains("KILN_HOME"), e.getMessage());
    }

    @Test
    void optionDefaultsAndValidation() {
        LocalCluster.Options o = LocalCluster.Options.builder().dataDir(data).build();
        assertEquals(2, o.workers());
        assertEquals(7480, o.apiPort());
        assertEquals(25520, o.clusterPort());
        assertEquals("h2", o.journal());
        assertEquals("http://127.0.0.1:7480", o.apiUrl());
        assertEquals(data.resolve("logs"), o.logsDir());
        assertEquals(data.resolve("local"), o.localDir());
        assertEquals(o.apiPort(), o.toBuilder().build().apiPort());
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.Options.builder().journal("mysql"));
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.Options.builder().apiPort(70000));
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.Options.builder().workers(-1));
    }

    @Test
    void createPicksFreePortsForZero() {
        LocalCluster c = LocalCluster.create(options().apiPort(0).clusterPort(0).build());
        assertTrue(c.options().apiPort() > 0);
        assertTrue(c.options().clusterPort() > 0);
        assertEquals("http://127.0.0.1:" + c.options().apiPort(), c.apiUrl());
        assertTrue(c.nodes().isEmpty());
    }

    @Test
    void logTailStartsAtTheLatestStart() throws Exception {
        Path log = repo.resolve("x.log");
        Files.writeString(log, LocalCluster.LOG_MARK + "starting coordinator =====\ncommand: java\nold 1\nold 2\n"
                + LocalCluster.LOG_MARK + "starting coordinator =====\ncommand: java\nnew 1\nnew 2\nnew 3\n\n");
        assertEquals("new 1\nnew 2\nnew 3\n", LocalCluster.logTail(log, 10));
        assertEquals("new 3\n", LocalCluster.logTail(log, 1));
        assertEquals("", LocalCluster.logTail(repo.resolve("missing.log"), 5));
    }

    @Test
    void nodeOrderAndNames() {
        List<String> names = new java.util.ArrayList<>(List.of("worker-10", "worker-2", "coordinator", "worker-1"));
        names.sort(LocalCluster.NODE_ORDER);
        assertEquals(List.of("coordinator", "worker-1", "worker-2", "worker-10"), names);
        assertEquals(10, LocalCluster.workerIndex("worker-10"));
        assertEquals(-1, LocalCluster.workerIndex("coordinator"));
    }

    @Test
    void attachWithoutPidFilesIsEmpty() {
        assertTrue(LocalCluster.attach(data).isEmpty());
    }

    @Test
    void workersGetTheirOwnCoresRoundRobinUnlessTheyWantThemAll() {
        assertEquals("0", LocalCluster.cpuSet(1, 1, 2));
        assertEquals("1", LocalCluster.cpuSet(2, 1, 2));
        assertEquals("0", LocalCluster.cpuSet(3, 1, 2));
        assertEquals("2,3", LocalCluster.cpuSet(2, 2, 8));
        assertEquals("", LocalCluster.cpuSet(1, 2, 2));
        assertEquals("", LocalCluster.cpuSet(1, 0, 2));
    }
}

package io.kiln.cli.local;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.sdk.KilnApiException;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnConnectionException;
import io.kiln.sdk.KilnException;
import io.kiln.sdk.KilnSettings;
import io.kiln.sdk.WorkerView;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.stream.Collectors;

/**
 * A local Kiln cluster: one coordinator JVM and N worker JVMs, each a detached process on loopback
 * (in its own session when {@code setsid} exists, so Ctrl-C in the launching terminal does not
 * reach it). Logs go to {@code <data-dir>/logs/<node>.log} (appended, one marker line per start),
 * pids to {@code <data-dir>/local/<node>.pid}, the options to {@code <data-dir>/local/cluster.json}
 * so another process can {@link #attach} and stop or restart nodes.
 *
 * <p>Used by {@code kiln local up|down|status|demo} and by multi-process integration tests:
 * <pre>{@code
 * LocalCluster.Options o = LocalCluster.Options.builder()
 *     .repoRoot(repo).dataDir(tmp).workers(2).apiPort(0).clusterPort(0)  // 0 = pick free ports
 *     .killOnExit(true).build();
 * try (LocalCluster c = LocalCluster.start(o)) {
 *     KilnClient kiln = c.client();
 *     c.killWorker("worker-2", true);           // SIGKILL one node
 *     c.restartCoordinator();                   // SIGTERM, start again, wait until ready
 *     c.addWorker();                            // worker-3
 * }
 * }</pre>
 * Node names are {@code coordinator} and {@code worker-<i>} ({@code i} from 1); a worker's name is
 * also its {@code kiln.worker.id}.
 */
public final class LocalCluster implements AutoCloseable {
    public static final String COORDINATOR_MAIN = "io.kiln.coordinator.CoordinatorMain";
    public static final String WORKER_MAIN = "io.kiln.worker.WorkerMain";
    public static final String COORDINATOR = "coordinator";
    public static final String WORKER_PREFIX = "worker-";
    public static final Duration STOP_GRACE = Duration.ofSeconds(20);
    public static final Duration DEFAULT_READY_TIMEOUT = Duration.ofSeconds(120);
    public static final String HOST = "127.0.0.1";
    /** Marks each start in a node's log; {@link #logTail} reads from the last one. */
    static final String LOG_MARK = "===== kiln local: ";
    static final String STATE_FILE = "cluster.json";
    /** A system property naming the node, first on each command line, to recognise our processes by pid. */
    static final String NODE_MARKER = "-Dkiln.local.node=";

    private final Options options;
    private final Map<String, Node> nodes = new LinkedHashMap<>();
    /** Highest worker index started or seen, so {@link #addWorker()} never reuses a killed worker's id. */
    private int maxWorkerIndex;
    private Thread shutdownHook;

    private LocalCluster(Options options) {
        this.options = options;
        if (options.killOnExit()) {
            shutdownHook = new Thread(this::killAllNow, "kiln-local-cluster-kill-on-exit");
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        }
    }

    // =================================================================== factories

    /**
     * Starts a coordinator and {@code options.workers()} workers and waits (up to
     * {@code options.readyTimeout()}) until {@code /health/ready} answers and {@code /api/v1/cluster}
     * lists every worker. On failure the started processes are stopped and the exception carries the
     * tail of the relevant log.
     *
     * @throws LocalClusterException if a cluster already runs in this data dir, a port is taken, a
     *                               module is not built, a node exits, or the wait times out
     */
    public static LocalCluster start(Options options) {
        return start(options, msg -> { });
    }

    /** As {@link #start(Options)}, reporting what it waits for to {@code progress} (every ~250 ms). */
    public static LocalCluster start(Options options, Consumer<String> progress) {
        Optional<LocalCluster> existing = attach(options.dataDir());
        if (existing.isPresent()) {
            LocalCluster old = existing.get();
            if (old.anyAlive()) {
                throw new LocalClusterException("a local Kiln cluster is already running in " + options.dataDir()
                        + " (" + old.describeNodes() + "); stop it first with `kiln local down`");
            }
            old.removeStateFiles(); // stale pid files of a crashed cluster
        }
        LocalCluster c = create(options);
        Options o = c.options;
        checkPortFree(o.apiPort(), "API (--api-port)");
        checkPortFree(o.clusterPort(), "cluster (--cluster-port)");
        try {
            progress.accept("starting the coordinator");
            c.startCoordinator();
            c.awaitHttp(o.readyTimeout(), progress);
            for (int i = 1; i <= o.workers(); i++) {
                progress.accept("starting " + WORKER_PREFIX + i);
                c.startWorker(i);
            }
            c.awaitReady(o.workers(), o.readyTimeout(), progress);
            return c;
        } catch (RuntimeException e) {
            try {
                c.stop(Duration.ofSeconds(5));
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * A handle that has started nothing yet: ports given as 0 are replaced by free ones. Start the
     * nodes with {@link #startCoordinator()} / {@link #startWorker(int)} and wait with
     * {@link #awaitReady(int, Duration, Consumer)}.
     */
    public static LocalCluster create(Options options) {
        Options o = options;
        if (o.apiPort() == 0 || o.clusterPort() == 0) {
            Options.Builder b = o.toBuilder();
            if (o.apiPort() == 0) {
                b.apiPort(freePort());
            }
            if (o.clusterPort() == 0) {
                b.clusterPort(freePort());
            }
            o = b.build();
        }
        return new LocalCluster(o);
    }

    /**
     * The cluster recorded in {@code <dataDir>/local} (by this or another process), with a node for
     * each pid file (alive or not); empty when there is no pid file.
     */
    public static Optional<LocalCluster> attach(Path dataDir) {
        Path localDir = dataDir.resolve("local");
        if (!Files.isDirectory(localDir)) {
            return Optional.empty();
        }
        Options o = readState(dataDir);
        Map<String, Long> pids = new LinkedHashMap<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(localDir, "*.pid")) {
            for (Path p : ds) {
                String name = p.getFileName().toString().replaceFirst("\\.pid$", "");
                try {
                    pids.put(name, Long.parseLong(Files.readString(p, StandardCharsets.UTF_8).trim()));
                } catch (NumberFormatException e) {
                    pids.put(name, -1L);
                }
            }
        } catch (IOException e) {
            throw new LocalClusterException("cannot read " + localDir + ": " + e.getMessage(), e);
        }
        if (pids.isEmpty()) {
            return Optional.empty();
        }
        LocalCluster c = new LocalCluster(o.toBuilder().killOnExit(false).build());
        List<String> names = new ArrayList<>(pids.keySet());
        names.sort(NODE_ORDER);
        for (String name : names) {
            long pid = pids.get(name);
            ProcessHandle h = pid <= 0 ? null : ProcessHandle.of(pid)
                    .filter(ProcessHandle::isAlive)
                    .filter(ph -> looksLikeNode(ph, name, o))
                    .orElse(null);
            c.nodes.put(name, new Node(name, pid, h, null, c.logFile(name), c.pidFile(name)));
        }
        return Optional.of(c);
    }

    // =================================================================== accessors

    /** The options, with the ports actually used. */
    public Options options() {
        return options;
    }

    /** {@code http://127.0.0.1:<api-port>}. */
    public String apiUrl() {
        return options.apiUrl();
    }

    /** A client for this cluster: its API URL and the token file of its data dir (KILN_TOKEN is not used). */
    public KilnClient client() {
        return KilnClient.forSettings(KilnSettings.of(apiUrl(), options.dataDir()));
    }

    private KilnClient pollingClient() {
        KilnSettings s = KilnSettings.of(apiUrl(), options.dataDir());
        return new KilnClient(s.apiUrl(), s::token, Duration.ofSeconds(10));
    }

    /** All nodes this handle knows: coordinator first, then workers by index. */
    public synchronized List<Node> nodes() {
        List<Node> all = new ArrayList<>(nodes.values());
        all.sort(Comparator.comparing(Node::name, NODE_ORDER));
        return all;
    }

    public synchronized Optional<Node> coordinator() {
        return Optional.ofNullable(nodes.get(COORDINATOR));
    }

    /** The worker nodes, by index. */
    public List<Node> workers() {
        return nodes().stream().filter(n -> !n.isCoordinator()).collect(Collectors.toList());
    }

    /** A node by name ({@code coordinator}, {@code worker-2}). */
    public synchronized Optional<Node> node(String name) {
        return Optional.ofNullable(nodes.get(name));
    }

    /** True when the coordinator and every known worker are alive. */
    public synchronized boolean isRunning() {
        Node c = nodes.get(COORDINATOR);
        return c != null && c.isAlive() && nodes.values().stream().allMatch(Node::isAlive);
    }

    /** True when at least one node is alive. */
    public synchronized boolean anyAlive() {
        return nodes.values().stream().anyMatch(Node::isAlive);
    }

    /** e.g. {@code coordinator pid 123, worker-1 pid 124, worker-2 pid 125 (not running)}. */
    public String describeNodes() {
        return nodes().stream().map(Node::toString).collect(Collectors.joining(", "));
    }

    // =================================================================== node control

    /** Starts the coordinator process (does not wait; see {@link #awaitReady}). */
    public synchronized Node startCoordinator() {
        Node old = nodes.get(COORDINATOR);
        if (old != null && old.isAlive()) {
            throw new LocalClusterException("the coordinator is already running (pid " + old.pid() + ")");
        }
        Node n = launch(COORDINATOR, coordinatorCommand(options));
        writeState();
        return n;
    }

    /** Starts {@code worker-<index>} (does not wait). Also restarts a worker that was killed. */
    public synchronized Node startWorker(int index) {
        if (index < 1) {
            throw new IllegalArgumentException("worker index starts at 1, got " + index);
        }
        String name = WORKER_PREFIX + index;
        Node old = nodes.get(name);
        if (old != null && old.isAlive()) {
            throw new LocalClusterException(name + " is already running (pid " + old.pid() + ")");
        }
        Node n = launch(name, workerCommand(options, index));
        maxWorkerIndex = Math.max(maxWorkerIndex, index);
        writeState();
        return n;
    }

    /**
     * Starts one more worker (does not wait), named after the highest index this handle has seen:
     * after worker-1..2, even if worker-2 was killed, it is {@code worker-3}.
     */
    public synchronized Node addWorker() {
        int max = Math.max(maxWorkerIndex, nodes.keySet().stream().mapToInt(LocalCluster::workerIndex).max().orElse(0));
        return startWorker(max + 1);
    }

    /**
     * Kills the coordinator: SIGTERM and up to 20 s grace then SIGKILL, or SIGKILL at once with
     * {@code force}. Returns when it has exited.
     */
    public Node killCoordinator(boolean force) {
        return kill(COORDINATOR, force);
    }

    /** Kills {@code worker-<i>} (see {@link #killCoordinator(boolean)}). */
    public Node killWorker(String name, boolean force) {
        if (workerIndex(name) < 1) {
            throw new IllegalArgumentException("not a worker name: " + name);
        }
        return kill(name, force);
    }

    /**
     * Kills a node (SIGTERM + grace, or SIGKILL with {@code force}), waits for its exit and removes
     * it and its pid file.
     */
    public Node kill(String name, boolean force) {
        Node n;
        synchronized (this) {
            n = nodes.get(name);
        }
        if (n == null) {
            throw new LocalClusterException("no node named " + name + " (have: " + describeNodes() + ")");
        }
        List<Node> survivors = terminate(List.of(n), force ? Duration.ZERO : STOP_GRACE);
        if (!survivors.isEmpty()) {
            throw new LocalClusterException("could not kill " + n);
        }
        synchronized (this) {
            nodes.remove(name, n);
        }
        deleteQuietly(n.pidFile());
        writeState();
        return n;
    }

    /**
     * Restarts the coordinator (SIGTERM, then a new process with the same options) and waits until
     * it is ready and lists every live worker again.
     */
    public Node restartCoordinator() {
        return restartCoordinator(options.readyTimeout());
    }

    /** As {@link #restartCoordinator()} with an explicit timeout. */
    public Node restartCoordinator(Duration timeout) {
        if (coordinator().map(Node::isAlive).orElse(false)) {
            killCoordinator(false);
        }
        Node n = startCoordinator();
        awaitReady(liveWorkerCount(), timeout, msg -> { });
        return n;
    }

    private int liveWorkerCount() {
        return (int) workers().stream().filter(Node::isAlive).count();
    }

    /** Waits until ready with every live worker listed (timeout from the options). */
    public void awaitReady() {
        awaitReady(liveWorkerCount(), options.readyTimeout(), msg -> { });
    }

    /**
     * Waits until {@code /health/ready} answers 200 and {@code /api/v1/cluster} lists at least
     * {@code expectedWorkers} workers. Fails early when a node exits.
     *
     * @throws LocalClusterException on timeout or a dead node, with the tail of the relevant log
     */
    public void awaitReady(int expectedWorkers, Duration timeout, Consumer<String> progress) {
        KilnClient client = pollingClient();
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean ready = false;
        String state = "waiting for the coordinator at " + apiUrl();
        Set<String> listed = new TreeSet<>();
        while (true) {
            checkAlive();
            try {
                if (!ready) {
                    client.ready();
                    ready = true;
                }
                List<WorkerView> ws = client.cluster();
                listed.clear();
                ws.forEach(w -> listed.add(w.id()));
                if (ws.size() >= expectedWorkers) {
                    progress.accept("ready: " + ws.size() + " worker" + (ws.size() == 1 ? "" : "s"));
                    return;
                }
                state = "waiting for workers to join: " + ws.size() + "/" + expectedWorkers;
            } catch (KilnApiException e) {
                state = e.status() == 503 ? "the coordinator is starting (not ready yet)"
                        : "the coordinator answers " + e.getMessage();
            } catch (KilnConnectionException e) {
                ready = false;
                state = "waiting for the coordinator to listen on " + apiUrl();
            } catch (KilnException e) {
                state = "unexpected answer: " + e.getMessage();
            }
            progress.accept(state);
            if (System.nanoTime() > deadline) {
                Path log = ready ? missingWorkerLog(listed) : logFile(COORDINATOR);
                throw new LocalClusterException("the local cluster was not ready after " + timeout.toSeconds()
                        + " s (" + state + ")", log, logTail(log, 40), null);
            }
            sleep(250);
        }
    }

    /** Waits until the coordinator answers HTTP at all (any status on /health/live). */
    void awaitHttp(Duration timeout, Consumer<String> progress) {
        KilnClient client = pollingClient();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            checkAlive();
            try {
                client.live();
                return;
            } catch (KilnConnectionException e) {
                progress.accept("waiting for the coordinator to listen on " + apiUrl());
            } catch (KilnException e) {
                return; // it answers (maybe 503): HTTP is up, workers can join
            }
            if (System.nanoTime() > deadline) {
                Path log = logFile(COORDINATOR);
                throw new LocalClusterException("the coordinator did not listen on " + apiUrl() + " within "
                        + timeout.toSeconds() + " s", log, logTail(log, 40), null);
            }
            sleep(250);
        }
    }

    private Path missingWorkerLog(Set<String> listed) {
        for (Node w : workers()) {
            if (!listed.contains(w.name())) {
                return w.logFile();
            }
        }
        return logFile(COORDINATOR);
    }

    /** Fails when a node this handle started has exited (attached nodes are not checked). */
    private void checkAlive() {
        for (Node n : nodes()) {
            if (n.process().isPresent() && !n.isAlive()) {
                String code = n.process().filter(p -> !p.isAlive()).map(p -> " with code " + p.exitValue()).orElse("");
                throw new LocalClusterException(n.name() + " exited" + code + " during start-up", n.logFile(),
                        logTail(n.logFile(), 40), null);
            }
        }
    }

    /**
     * Stops every node: SIGTERM, up to 20 s for all to exit, then SIGKILL; removes the pid files and
     * the state file.
     */
    public void stop() {
        stop(STOP_GRACE);
    }

    /** As {@link #stop()} with another grace period. */
    public void stop(Duration grace) {
        List<Node> all = nodes();
        // workers first, so they leave the cluster before the coordinator goes
        List<Node> ordered = new ArrayList<>(all);
        Collections.reverse(ordered);
        List<Node> survivors = terminate(ordered, grace);
        synchronized (this) {
            nodes.clear();
        }
        removeStateFiles();
        if (shutdownHook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException ignored) {
                // already shutting down
            }
            shutdownHook = null;
        }
        if (!survivors.isEmpty()) {
            throw new LocalClusterException("could not stop " + survivors);
        }
    }

    /** Same as {@link #stop()}. */
    @Override
    public void close() {
        stop();
    }

    /** Deletes the pid files and the state file (not the logs). */
    void removeStateFiles() {
        Path localDir = options.localDir();
        if (!Files.isDirectory(localDir)) {
            return;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(localDir, "*.pid")) {
            for (Path p : ds) {
                deleteQuietly(p);
            }
        } catch (IOException ignored) {
            // best effort
        }
        deleteQuietly(localDir.resolve(STATE_FILE));
    }

    /** SIGTERM (or SIGKILL when grace is zero), wait, SIGKILL what is left; returns nodes still alive. */
    private static List<Node> terminate(List<Node> targets, Duration grace) {
        List<Node> alive = targets.stream().filter(Node::isAlive).collect(Collectors.toList());
        boolean force = grace.isZero() || grace.isNegative();
        alive.forEach(n -> n.signal(force));
        long deadline = System.nanoTime() + grace.toNanos();
        for (Node n : alive) {
            long left = Math.max(0, deadline - System.nanoTime());
            n.awaitExit(Duration.ofNanos(left));
        }
        List<Node> stubborn = alive.stream().filter(Node::isAlive).collect(Collectors.toList());
        stubborn.forEach(n -> n.signal(true));
        stubborn.forEach(n -> n.awaitExit(Duration.ofSeconds(5)));
        return stubborn.stream().filter(Node::isAlive).collect(Collectors.toList());
    }

    private void killAllNow() {
        List<Node> all;
        synchronized (this) {
            all = new ArrayList<>(nodes.values());
        }
        all.stream().filter(Node::isAlive).forEach(n -> n.signal(true));
    }

    // =================================================================== process launch

    private Node launch(String name, List<String> command) {
        Path log = logFile(name);
        Path pidFile = pidFile(name);
        try {
            Files.createDirectories(options.logsDir());
            Files.createDirectories(options.localDir());
            String header = "\n" + LOG_MARK + "starting " + name + " at " + Instant.now() + " =====\n"
                    + "command: " + printable(command) + "\n";
            Files.writeString(log, header, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            List<String> cmd = new ArrayList<>();
            String setsid = options.detach() ? setsidPath() : null;
            if (setsid != null) {
                cmd.add(setsid);
            }
            cmd.addAll(command);
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .directory(options.dataDir().toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            pb.environment().put("KILN_DATA_DIR", options.dataDir().toString());
            pb.environment().put("DJL_CACHE_DIR", djlCacheDir(options).toString());
            Process p = pb.start();
            writeAtomically(pidFile, p.pid() + "\n");
            Node n = new Node(name, p.pid(), p.toHandle(), p, log, pidFile);
            nodes.put(name, n);
            return n;
        } catch (IOException e) {
            throw new LocalClusterException("cannot start " + name + ": " + e.getMessage(), log, null, e);
        }
    }

    private static String setsidPath() {
        for (String s : new String[] {"/usr/bin/setsid", "/bin/setsid"}) {
            if (Files.isExecutable(Paths.get(s))) {
                return s;
            }
        }
        return null;
    }

    /** The command line for the log header, with the long classpath shortened. */
    static String printable(List<String> command) {
        List<String> out = new ArrayList<>(command);
        int cp = out.indexOf("-cp");
        if (cp >= 0 && cp + 1 < out.size()) {
            String v = out.get(cp + 1);
            int n = v.split(File.pathSeparator).length;
            out.set(cp + 1, v.substring(0, Math.min(v.length(), v.indexOf(File.pathSeparator) < 0 ? v.length()
                    : v.indexOf(File.pathSeparator))) + File.pathSeparator + "...(" + n + " entries)");
        }
        return String.join(" ", out);
    }

    // =================================================================== pure command assembly

    /** The coordinator's command line (java ... CoordinatorMain); pure, for tests. */
    public static List<String> coordinatorCommand(Options o) {
        List<String> cmd = new ArrayList<>();
        cmd.add(o.javaBin());
        cmd.add(NODE_MARKER + COORDINATOR); // first: the OS may truncate a long command line (classpath)
        cmd.addAll(o.jvmArgs());
        cmd.add("-cp");
        cmd.add(o.coordinatorClasspath() != null ? o.coordinatorClasspath() : classpath(o.requireRepoRoot(), "coordinator"));
        cmd.add("-Dkiln.data-dir=" + o.dataDir());
        cmd.add("-Dkiln.api.port=" + o.apiPort());
        cmd.add("-Dkiln.cluster.port=" + o.clusterPort());
        cmd.add("-Dkiln.cluster.seed=" + HOST + ":" + o.clusterPort());
        cmd.add("-Dkiln.journal=" + o.journal());
        if ("postgres".equals(o.journal())) {
            cmd.add("-Dkiln.postgres.url=" + o.postgresUrl());
        }
        o.coordinatorProperties().forEach((k, v) -> cmd.add("-D" + k + "=" + v));
        cmd.add(o.coordinatorMainClass());
        return cmd;
    }

    /** The command line of {@code worker-<index>} (java ... WorkerMain); pure, for tests. */
    public static List<String> workerCommand(Options o, int index) {
        List<String> cmd = new ArrayList<>();
        cmd.add(o.javaBin());
        cmd.add(NODE_MARKER + WORKER_PREFIX + index);
        cmd.addAll(o.jvmArgs());
        cmd.add("-cp");
        cmd.add(o.workerClasspath() != null ? o.workerClasspath() : classpath(o.requireRepoRoot(), "worker"));
        cmd.add("-Dkiln.cluster.port=0");
        cmd.add("-Dkiln.cluster.seed=" + HOST + ":" + o.clusterPort());
        cmd.add("-Dkiln.worker.id=" + WORKER_PREFIX + index);
        cmd.add("-Dkiln.worker.cpus=" + o.workerCpus());
        cmd.add("-Dkiln.data-dir=" + o.dataDir());
        cmd.add("-DDJL_CACHE_DIR=" + djlCacheDir(o));
        cmd.add("-Dai.djl.offline=true");
        if (!o.workerProperties().containsKey("kiln.worker.cpu-set")) {
            String cpus = cpuSet(index, o.workerCpus(), Runtime.getRuntime().availableProcessors());
            if (!cpus.isEmpty()) cmd.add("-Dkiln.worker.cpu-set=" + cpus);
        }
        if (o.repoRoot() != null && !o.workerProperties().containsKey("kiln.worker.hosting.classpath")
                && Files.isRegularFile(o.repoRoot().resolve("deploy/target/classpath.txt"))) {
            // endpoint replicas and batch-transform splits: io.kiln.deploy processes the worker hosts
            cmd.add("-Dkiln.worker.hosting.classpath=" + classpath(o.repoRoot(), "deploy"));
        }
        o.workerProperties().forEach((k, v) -> cmd.add("-D" + k + "=" + v));
        cmd.add(o.workerMainClass());
        return cmd;
    }

    /**
     * {@code <repo>/<module>/target/classes} followed by the runtime classpath Maven wrote to
     * {@code <repo>/<module>/target/classpath.txt}.
     *
     * @throws LocalClusterException when the module is not built
     */
    /**
     * The CPUs worker {@code index} (from 1) is pinned to: its own {@code cpusPerWorker} cores, round
     * robin over the machine's, so that local workers do not steal each other's cores (as a
     * Kubernetes static CPU manager would). Empty (no pinning) when a worker wants every core.
     */
    public static String cpuSet(int index, int cpusPerWorker, int machineCpus) {
        if (cpusPerWorker <= 0 || cpusPerWorker >= machineCpus) {
            return "";
        }
        StringBuilder b = new StringBuilder();
        for (int k = 0; k < cpusPerWorker; k++) {
            if (k > 0) {
                b.append(',');
            }
            b.append(((index - 1) * cpusPerWorker + k) % machineCpus);
        }
        return b.toString();
    }

    public static String classpath(Path repoRoot, String module) {
        Path target = repoRoot.resolve(module).resolve("target");
        Path cpFile = target.resolve("classpath.txt");
        Path classes = target.resolve("classes");
        if (!Files.isRegularFile(cpFile) || !Files.isDirectory(classes)) {
            throw new LocalClusterException("the " + module + " module is not built (" + (Files.isRegularFile(cpFile)
                    ? classes : cpFile) + " is missing): run ./kiln once (it builds) or `mvn -B -DskipTests install` in "
                    + repoRoot);
        }
        String deps;
        try {
            deps = Files.readString(cpFile, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new LocalClusterException("cannot read " + cpFile + ": " + e.getMessage(), e);
        }
        List<String> parts = new ArrayList<>();
        parts.add(classes.toString());
        for (String s : deps.split("[" + File.pathSeparator + "\\r\\n]+")) {
            if (!s.isBlank()) {
                parts.add(s.trim());
            }
        }
        return String.join(File.pathSeparator, parts);
    }

    static Path djlCacheDir(Options o) {
        return o.repoRoot() != null ? o.repoRoot().resolve(".cache").resolve("djl") : o.dataDir().resolve("djl");
    }

    // =================================================================== files

    Path logFile(String name) {
        return options.logsDir().resolve(name + ".log");
    }

    Path pidFile(String name) {
        return options.localDir().resolve(name + ".pid");
    }

    /**
     * The last {@code maxLines} lines of a node log written since its latest start marker; empty
     * when the file does not exist.
     */
    public static String logTail(Path log, int maxLines) {
        if (log == null || !Files.isRegularFile(log)) {
            return "";
        }
        try (RandomAccessFile f = new RandomAccessFile(log.toFile(), "r")) {
            long len = f.length();
            int n = (int) Math.min(len, 256 * 1024);
            byte[] buf = new byte[n];
            f.seek(len - n);
            f.readFully(buf);
            String text = new String(buf, StandardCharsets.UTF_8);
            int mark = text.lastIndexOf(LOG_MARK);
            if (mark >= 0) {
                int nl = text.indexOf('\n', mark);
                text = nl < 0 ? "" : text.substring(nl + 1);
                if (text.startsWith("command: ")) {
                    int nl2 = text.indexOf('\n');
                    text = nl2 < 0 ? "" : text.substring(nl2 + 1);
                }
            }
            String[] lines = text.split("\r?\n", -1);
            int end = lines.length;
            while (end > 0 && lines[end - 1].isEmpty()) {
                end--;
            }
            int start = Math.max(0, end - maxLines);
            StringBuilder sb = new StringBuilder();
            for (int i = start; i < end; i++) {
                sb.append(lines[i]).append('\n');
            }
            return sb.toString();
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e.getMessage() + ")\n";
        }
    }

    private void writeState() {
        ObjectNode s = KilnClient.MAPPER.createObjectNode();
        Options o = options;
        s.put("apiUrl", o.apiUrl());
        s.put("apiPort", o.apiPort());
        s.put("clusterPort", o.clusterPort());
        s.put("dataDir", o.dataDir().toString());
        if (o.repoRoot() != null) {
            s.put("repoRoot", o.repoRoot().toString());
        }
        s.put("workers", o.workers());
        s.put("workerCpus", o.workerCpus());
        s.put("journal", o.journal());
        s.put("postgresUrl", o.postgresUrl());
        s.put("javaBin", o.javaBin());
        s.set("jvmArgs", KilnClient.MAPPER.valueToTree(o.jvmArgs()));
        s.put("coordinatorMainClass", o.coordinatorMainClass());
        s.put("workerMainClass", o.workerMainClass());
        if (o.coordinatorClasspath() != null) {
            s.put("coordinatorClasspath", o.coordinatorClasspath());
        }
        if (o.workerClasspath() != null) {
            s.put("workerClasspath", o.workerClasspath());
        }
        s.set("coordinatorProperties", KilnClient.MAPPER.valueToTree(o.coordinatorProperties()));
        s.set("workerProperties", KilnClient.MAPPER.valueToTree(o.workerProperties()));
        s.put("readyTimeoutSeconds", o.readyTimeout().toSeconds());
        s.put("detach", o.detach());
        s.put("updatedAt", Instant.now().toString());
        try {
            Files.createDirectories(o.localDir());
            writeAtomically(o.localDir().resolve(STATE_FILE),
                    KilnClient.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(s));
        } catch (IOException e) {
            throw new LocalClusterException("cannot write " + o.localDir().resolve(STATE_FILE) + ": " + e.getMessage(), e);
        }
    }

    /** The options recorded in {@code <dataDir>/local/cluster.json}, or defaults for that data dir. */
    static Options readState(Path dataDir) {
        Options.Builder b = Options.builder().dataDir(dataDir);
        Path f = dataDir.resolve("local").resolve(STATE_FILE);
        if (!Files.isRegularFile(f)) {
            return b.build();
        }
        try {
            JsonNode s = KilnClient.MAPPER.readTree(f.toFile());
            if (s.hasNonNull("repoRoot")) {
                b.repoRoot(Paths.get(s.get("repoRoot").asText()));
            }
            b.apiPort(s.path("apiPort").asInt(b.apiPort));
            b.clusterPort(s.path("clusterPort").asInt(b.clusterPort));
            b.workers(s.path("workers").asInt(b.workers));
            b.workerCpus(s.path("workerCpus").asInt(b.workerCpus));
            b.journal(s.path("journal").asText(b.journal));
            if (s.hasNonNull("postgresUrl")) {
                b.postgresUrl(s.get("postgresUrl").asText());
            }
            b.javaBin(s.path("javaBin").asText(b.javaBin));
            if (s.path("jvmArgs").isArray()) {
                List<String> args = new ArrayList<>();
                s.get("jvmArgs").forEach(x -> args.add(x.asText()));
                b.jvmArgs(args);
            }
            b.coordinatorMainClass(s.path("coordinatorMainClass").asText(b.coordinatorMainClass));
            b.workerMainClass(s.path("workerMainClass").asText(b.workerMainClass));
            if (s.hasNonNull("coordinatorClasspath")) {
                b.coordinatorClasspath(s.get("coordinatorClasspath").asText());
            }
            if (s.hasNonNull("workerClasspath")) {
                b.workerClasspath(s.get("workerClasspath").asText());
            }
            s.path("coordinatorProperties").fields().forEachRemaining(e -> b.coordinatorProperty(e.getKey(), e.getValue().asText()));
            s.path("workerProperties").fields().forEachRemaining(e -> b.workerProperty(e.getKey(), e.getValue().asText()));
            if (s.has("readyTimeoutSeconds")) {
                b.readyTimeout(Duration.ofSeconds(s.get("readyTimeoutSeconds").asLong(120)));
            }
            b.detach(s.path("detach").asBoolean(true));
        } catch (IOException | RuntimeException e) {
            // a damaged state file: fall back to the defaults for this data dir
        }
        return b.build();
    }

    private static void writeAtomically(Path target, String content) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, content, StandardCharsets.UTF_8);
        try {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort
        }
    }

    // =================================================================== helpers

    /**
     * Whether a live process is (still) this node, not a recycled pid: its command line carries
     * {@code -Dkiln.local.node=<name>} (put first, as Linux shows only the first 4 KiB) or one of the
     * main classes. True when the command line cannot be read.
     */
    static boolean looksLikeNode(ProcessHandle h, String name, Options o) {
        Optional<String> line = h.info().commandLine();
        if (line.isEmpty()) {
            line = h.info().arguments().map(a -> String.join(" ", a));
        }
        if (line.isEmpty() || line.get().isBlank()) {
            return true;
        }
        String l = line.get() + " ";
        return l.contains(NODE_MARKER + name + " ") || l.contains(o.coordinatorMainClass())
                || l.contains(o.workerMainClass()) || l.contains(COORDINATOR_MAIN) || l.contains(WORKER_MAIN);
    }

    /** The i of {@code worker-<i>}, or -1. */
    static int workerIndex(String name) {
        if (name == null || !name.startsWith(WORKER_PREFIX)) {
            return -1;
        }
        try {
            return Integer.parseInt(name.substring(WORKER_PREFIX.length()));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static final Comparator<String> NODE_ORDER = (a, b) -> {
        if (a.equals(b)) {
            return 0;
        }
        if (COORDINATOR.equals(a)) {
            return -1;
        }
        if (COORDINATOR.equals(b)) {
            return 1;
        }
        int ia = workerIndex(a);
        int ib = workerIndex(b);
        if (ia >= 0 && ib >= 0) {
            return Integer.compare(ia, ib);
        }
        return a.compareTo(b);
    };

    /** A free TCP port on loopback (racy by nature, fine for local start-up). */
    public static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new LocalClusterException("cannot find a free port: " + e.getMessage(), e);
        }
    }

    /** Whether a TCP port can be bound on 127.0.0.1. */
    public static boolean isPortFree(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void checkPortFree(int port, String what) {
        if (!isPortFree(port)) {
            throw new LocalClusterException("the " + what + " port " + port + " on " + HOST
                    + " is in use (another Kiln coordinator, or another program?): stop it or choose another port");
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new LocalClusterException("interrupted while waiting for the local cluster", e);
        }
    }

    @Override
    public String toString() {
        return "LocalCluster{" + apiUrl() + ", dataDir=" + options.dataDir() + ", " + describeNodes() + "}";
    }

    // =================================================================== Node

    /** One process of the cluster: the coordinator or a worker. */
    public static final class Node {
        private final String name;
        private final long pid;
        private final ProcessHandle handle;
        private final Process process;
        private final Path logFile;
        private final Path pidFile;

        Node(String name, long pid, ProcessHandle handle, Process process, Path logFile, Path pidFile) {
            this.name = name;
            this.pid = pid;
            this.handle = handle;
            this.process = process;
            this.logFile = logFile;
            this.pidFile = pidFile;
        }

        /** {@code coordinator} or {@code worker-<i>}. */
        public String name() {
            return name;
        }

        public long pid() {
            return pid;
        }

        /** The process handle; empty when a recorded pid was not (or no longer) this node. */
        public Optional<ProcessHandle> handle() {
            return Optional.ofNullable(handle);
        }

        /** The Process, when this JVM started it (gives the exit code). */
        public Optional<Process> process() {
            return Optional.ofNullable(process);
        }

        public Path logFile() {
            return logFile;
        }

        public Path pidFile() {
            return pidFile;
        }

        public boolean isCoordinator() {
            return COORDINATOR.equals(name);
        }

        public boolean isAlive() {
            return handle != null && handle.isAlive();
        }

        /** SIGTERM ({@code force=false}) or SIGKILL; no-op when not alive. */
        public void signal(boolean force) {
            if (handle == null || !handle.isAlive()) {
                return;
            }
            if (force) {
                handle.destroyForcibly();
            } else {
                handle.destroy();
            }
        }

        /** Waits for the exit; true when it has exited (or was never alive). */
        public boolean awaitExit(Duration timeout) {
            if (handle == null || !handle.isAlive()) {
                return true;
            }
            try {
                handle.onExit().get(Math.max(1, timeout.toMillis()), TimeUnit.MILLISECONDS);
                return true;
            } catch (TimeoutException e) {
                return !handle.isAlive();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return !handle.isAlive();
            } catch (ExecutionException e) {
                return !handle.isAlive();
            }
        }

        @Override
        public String toString() {
            return name + " pid " + pid + (isAlive() ? "" : " (not running)");
        }
    }

    // =================================================================== Options

    /** How to start a local cluster. Build with {@link #builder()}; defaults as for {@code kiln local up}. */
    public static final class Options {
        private final Path repoRoot;
        private final Path dataDir;
        private final int workers;
        private final int apiPort;
        private final int clusterPort;
        private final String journal;
        private final String postgresUrl;
        private final String javaBin;
        private final List<String> jvmArgs;
        private final int workerCpus;
        private final Duration readyTimeout;
        private final String coordinatorClasspath;
        private final String workerClasspath;
        private final String coordinatorMainClass;
        private final String workerMainClass;
        private final Map<String, String> coordinatorProperties;
        private final Map<String, String> workerProperties;
        private final boolean detach;
        private final boolean killOnExit;

        private Options(Builder b) {
            this.repoRoot = b.repoRoot == null ? null : b.repoRoot.toAbsolutePath().normalize();
            this.dataDir = b.dataDir.toAbsolutePath().normalize();
            this.workers = b.workers;
            this.apiPort = b.apiPort;
            this.clusterPort = b.clusterPort;
            this.journal = b.journal;
            this.postgresUrl = b.postgresUrl;
            this.javaBin = b.javaBin;
            this.jvmArgs = List.copyOf(b.jvmArgs);
            this.workerCpus = b.workerCpus;
            this.readyTimeout = b.readyTimeout;
            this.coordinatorClasspath = b.coordinatorClasspath;
            this.workerClasspath = b.workerClasspath;
            this.coordinatorMainClass = b.coordinatorMainClass;
            this.workerMainClass = b.workerMainClass;
            this.coordinatorProperties = Collections.unmodifiableMap(new LinkedHashMap<>(b.coordinatorProperties));
            this.workerProperties = Collections.unmodifiableMap(new LinkedHashMap<>(b.workerProperties));
            this.detach = b.detach;
            this.killOnExit = b.killOnExit;
        }

        /**
         * Defaults: repo root from {@code -Dkiln.home}, {@code KILN_HOME} or {@code -Dkiln.repo.root};
         * data dir {@code KILN_DATA_DIR} or {@code ~/.kiln}; 2 workers; API port 7480; cluster port
         * 25520; H2 journal; this JVM's java; 1 cpu per worker; 120 s ready timeout; detached.
         */
        public static Builder builder() {
            return new Builder();
        }

        public Builder toBuilder() {
            Builder b = new Builder();
            b.repoRoot = repoRoot;
            b.dataDir = dataDir;
            b.workers = workers;
            b.apiPort = apiPort;
            b.clusterPort = clusterPort;
            b.journal = journal;
            b.postgresUrl = postgresUrl;
            b.javaBin = javaBin;
            b.jvmArgs = new ArrayList<>(jvmArgs);
            b.workerCpus = workerCpus;
            b.readyTimeout = readyTimeout;
            b.coordinatorClasspath = coordinatorClasspath;
            b.workerClasspath = workerClasspath;
            b.coordinatorMainClass = coordinatorMainClass;
            b.workerMainClass = workerMainClass;
            b.coordinatorProperties = new LinkedHashMap<>(coordinatorProperties);
            b.workerProperties = new LinkedHashMap<>(workerProperties);
            b.detach = detach;
            b.killOnExit = killOnExit;
            return b;
        }

        /** The Kiln checkout whose {@code <module>/target} holds the built classes; may be null. */
        public Path repoRoot() {
            return repoRoot;
        }

        Path requireRepoRoot() {
            if (repoRoot == null) {
                throw new LocalClusterException("the Kiln repository root is unknown: run through ./kiln, or set "
                        + "KILN_HOME (or -Dkiln.home) to the checkout");
            }
            return repoRoot;
        }

        public Path dataDir() {
            return dataDir;
        }

        public Path logsDir() {
            return dataDir.resolve("logs");
        }

        public Path localDir() {
            return dataDir.resolve("local");
        }

        public int workers() {
            return workers;
        }

        public int apiPort() {
            return apiPort;
        }

        public int clusterPort() {
            return clusterPort;
        }

        public String apiUrl() {
            return "http://" + HOST + ":" + apiPort;
        }

        /** {@code h2} or {@code postgres}. */
        public String journal() {
            return journal;
        }

        public String postgresUrl() {
            return postgresUrl;
        }

        public String javaBin() {
            return javaBin;
        }

        public List<String> jvmArgs() {
            return jvmArgs;
        }

        public int workerCpus() {
            return workerCpus;
        }

        public Duration readyTimeout() {
            return readyTimeout;
        }

        /** Overrides the coordinator classpath (null: from the repo's coordinator/target). */
        public String coordinatorClasspath() {
            return coordinatorClasspath;
        }

        /** Overrides the worker classpath (null: from the repo's worker/target). */
        public String workerClasspath() {
            return workerClasspath;
        }

        public String coordinatorMainClass() {
            return coordinatorMainClass;
        }

        public String workerMainClass() {
            return workerMainClass;
        }

        /** Extra {@code -Dkey=value} for the coordinator. */
        public Map<String, String> coordinatorProperties() {
            return coordinatorProperties;
        }

        /** Extra {@code -Dkey=value} for every worker. */
        public Map<String, String> workerProperties() {
            return workerProperties;
        }

        /** Start nodes in their own session (setsid) so terminal signals do not reach them. */
        public boolean detach() {
            return detach;
        }

        /** SIGKILL the nodes this handle started when this JVM exits (for tests). */
        public boolean killOnExit() {
            return killOnExit;
        }

        /** Builder of {@link Options}. */
        public static final class Builder {
            private Path repoRoot = defaultRepoRoot();
            private Path dataDir = KilnSettings.defaultDataDir(System.getenv());
            private int workers = 2;
            private int apiPort = 7480;
            private int clusterPort = 25520;
            private String journal = "h2";
            private String postgresUrl = "jdbc:postgresql://127.0.0.1:5432/kiln";
            private String javaBin = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
            private List<String> jvmArgs = new ArrayList<>();
            private int workerCpus = 1;
            private Duration readyTimeout = DEFAULT_READY_TIMEOUT;
            private String coordinatorClasspath;
            private String workerClasspath;
            private String coordinatorMainClass = COORDINATOR_MAIN;
            private String workerMainClass = WORKER_MAIN;
            private Map<String, String> coordinatorProperties = new LinkedHashMap<>();
            private Map<String, String> workerProperties = new LinkedHashMap<>();
            private boolean detach = true;
            private boolean killOnExit = false;

            private Builder() {
            }

            public Builder repoRoot(Path repoRoot) {
                this.repoRoot = repoRoot;
                return this;
            }

            public Builder dataDir(Path dataDir) {
                this.dataDir = java.util.Objects.requireNonNull(dataDir, "dataDir");
                return this;
            }

            /** Number of workers {@link LocalCluster#start} launches (0 allowed). */
            public Builder workers(int workers) {
                if (workers < 0 || workers > 64) {
                    throw new IllegalArgumentException("workers must be 0..64, got " + workers);
                }
                this.workers = workers;
                return this;
            }

            /** REST port; 0 = a free one. */
            public Builder apiPort(int apiPort) {
                this.apiPort = checkPort(apiPort, "apiPort");
                return this;
            }

            /** The coordinator's Pekko (seed) port; 0 = a free one. */
            public Builder clusterPort(int clusterPort) {
                this.clusterPort = checkPort(clusterPort, "clusterPort");
                return this;
            }

            /** {@code h2} (default) or {@code postgres}. */
            public Builder journal(String journal) {
                if (!"h2".equals(journal) && !"postgres".equals(journal)) {
                    throw new IllegalArgumentException("journal must be h2 or postgres, got " + journal);
                }
                this.journal = journal;
                return this;
            }

            public Builder postgresUrl(String postgresUrl) {
                this.postgresUrl = postgresUrl;
                return this;
            }

            public Builder javaBin(String javaBin) {
                this.javaBin = javaBin;
                return this;
            }

            /** JVM options put before {@code -cp} for every node (e.g. {@code -Xmx512m}). */
            public Builder jvmArgs(List<String> jvmArgs) {
                this.jvmArgs = new ArrayList<>(jvmArgs);
                return this;
            }

            public Builder workerCpus(int workerCpus) {
                this.workerCpus = workerCpus;
                return this;
            }

            public Builder readyTimeout(Duration readyTimeout) {
                this.readyTimeout = readyTimeout;
                return this;
            }

            public Builder coordinatorClasspath(String cp) {
                this.coordinatorClasspath = cp;
                return this;
            }

            public Builder workerClasspath(String cp) {
                this.workerClasspath = cp;
                return this;
            }

            public Builder coordinatorMainClass(String mainClass) {
                this.coordinatorMainClass = mainClass;
                return this;
            }

            public Builder workerMainClass(String mainClass) {
                this.workerMainClass = mainClass;
                return this;
            }

            public Builder coordinatorProperty(String key, String value) {
                this.coordinatorProperties.put(key, value);
                return this;
            }

            public Builder workerProperty(String key, String value) {
                this.workerProperties.put(key, value);
                return this;
            }

            public Builder detach(boolean detach) {
                this.detach = detach;
                return this;
            }

            public Builder killOnExit(boolean killOnExit) {
                this.killOnExit = killOnExit;
                return this;
            }

            public Options build() {
                return new Options(this);
            }

            private static int checkPort(int port, String what) {
                if (port < 0 || port > 65535) {
                    throw new IllegalArgumentException(what + " must be 0..65535, got " + port);
                }
                return port;
            }
        }

        /** {@code -Dkiln.home}, {@code KILN_HOME}, {@code -Dkiln.repo.root} (set by the build's surefire), or null. */
        public static Path defaultRepoRoot() {
            for (String s : new String[] {System.getProperty("kiln.home"), System.getenv("KILN_HOME"),
                    System.getProperty("kiln.repo.root")}) {
                if (s != null && !s.isBlank()) {
                    return Paths.get(s).toAbsolutePath().normalize();
                }
            }
            return null;
        }
    }
}

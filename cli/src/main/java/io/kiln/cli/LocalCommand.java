package io.kiln.cli;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnException;
import io.kiln.sdk.KilnSettings;
import io.kiln.sdk.WorkerView;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln local up|down|status|add-worker|kill}: a coordinator and workers as local processes. */
@Command(name = "local", mixinStandardHelpOptions = true,
        description = "Run a local Kiln cluster: one coordinator and N worker JVMs on 127.0.0.1.",
        subcommands = {LocalCommand.Up.class, LocalCommand.Down.class, LocalCommand.Status.class, LocalCommand.AddWorker.class,
            LocalCommand.Kill.class, LocalCommand.RestartCoordinator.class})
public final class LocalCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    static Path dataDir(Path option) {
        return option != null ? option.toAbsolutePath().normalize() : KilnSettings.defaultDataDir(System.getenv());
    }

    static void printNodes(PrintWriter out, LocalCluster c) {
        Table t = new Table("  NODE", "PID", "STATE", "LOG");
        for (LocalCluster.Node n : c.nodes()) {
            t.row("  " + n.name(), n.pid(), n.isAlive() ? "running" : "not running", n.logFile());
        }
        out.print(t.render());
    }

    static void hintDataDir(PrintWriter out, Path dataDir) {
        if (!dataDir.equals(KilnSettings.defaultDataDir(System.getenv()))) {
            out.println("Other kiln commands find this cluster with: export KILN_DATA_DIR=" + dataDir);
        }
    }

    /** {@code kiln local up}. */
    @Command(name = "up", mixinStandardHelpOptions = true,
            description = {"Start a local cluster (coordinator + N workers, each a detached JVM) and wait until it is ready.",
                    "Logs: <data-dir>/logs/{coordinator,worker-N}.log; pids: <data-dir>/local/*.pid."})
    static final class Up implements Callable<Integer> {
        enum Journal { h2, postgres }

        @Spec
        CommandSpec spec;

        @Option(names = "--workers", paramLabel = "N", defaultValue = "2", description = "Worker JVMs (default: ${DEFAULT-VALUE}).")
        int workers;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Option(names = "--api-port", paramLabel = "PORT", defaultValue = "7480", description = "REST port (default: ${DEFAULT-VALUE}).")
        int apiPort;

        @Option(names = "--cluster-port", paramLabel = "PORT", defaultValue = "25520",
                description = "Coordinator's cluster (seed) port (default: ${DEFAULT-VALUE}).")
        int clusterPort;

        @Option(names = "--journal", paramLabel = "KIND", defaultValue = "h2", description = "h2 (default) or postgres.")
        Journal journal;

        @Option(names = "--postgres-url", paramLabel = "JDBC_URL", defaultValue = "jdbc:postgresql://127.0.0.1:5432/kiln",
                description = "With --journal postgres (default: ${DEFAULT-VALUE}).")
        String postgresUrl;

        @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "120",
                description = "How long to wait for readiness (default: ${DEFAULT-VALUE}).")
        int timeoutSeconds;

        @Option(names = "--jvm-opt", paramLabel = "OPT",
                description = "Extra JVM option for every node (repeatable), e.g. --jvm-opt=-Xmx1g. Also from KILN_JAVA_OPTS.")
        List<String> jvmOpts;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            PrintWriter err = spec.commandLine().getErr();
            if (workers < 1 || workers > 64) {
                throw new UsageException("--workers must be 1..64, got " + workers);
            }
            Path dir = dataDir(dataDir);
            Optional<LocalCluster> existing = LocalCluster.attach(dir);
            if (existing.isPresent() && existing.get().anyAlive()) {
                return reportExisting(existing.get(), out, err);
            }
            LocalCluster.Options o = options(dir);
            LocalCluster c;
            try (Spinner sp = new Spinner(err, JobFollower.interactive(), "Starting local Kiln cluster")) {
                c = LocalCluster.start(o, sp::update);
            }
            printStarted(out, c);
            out.println("Next: ./kiln demo  |  ./kiln train -f job.yaml  |  ./kiln cluster  |  ./kiln local down");
            hintDataDir(out, dir);
            out.flush();
            return ExitCodes.OK;
        }

        LocalCluster.Options options(Path dir) {
            List<String> jvm = new ArrayList<>();
            String env = System.getenv("KILN_JAVA_OPTS");
            if (env != null && !env.isBlank()) {
                jvm.addAll(Arrays.asList(env.trim().split("\\s+")));
            }
            if (jvmOpts != null) {
                jvm.addAll(jvmOpts);
            }
            return LocalCluster.Options.builder()
                    .dataDir(dir)
                    .workers(workers)
                    .apiPort(apiPort)
                    .clusterPort(clusterPort)
                    .journal(journal.name())
                    .postgresUrl(postgresUrl)
                    .readyTimeout(Duration.ofSeconds(timeoutSeconds))
                    .jvmArgs(jvm)
                    .build();
        }
    }

    static int reportExisting(LocalCluster c, PrintWriter out, PrintWriter err) {
        if (c.isRunning()) {
            out.println("A local Kiln cluster is already running at " + c.apiUrl() + " (data dir " + c.options().dataDir() + "):");
            printNodes(out, c);
            out.println("Not starting a second one. Stop it with: ./kiln local down");
            out.flush();
            return ExitCodes.OK;
        }
        err.println("A local Kiln cluster is partly running in " + c.options().dataDir() + ":");
        printNodes(err, c);
        err.println("Run ./kiln local down first, then ./kiln local up.");
        err.flush();
        return ExitCodes.API;
    }

    static void printStarted(PrintWriter out, LocalCluster c) {
        out.println("Local Kiln cluster is up: API " + c.apiUrl() + ", " + c.workers().size() + " worker"
                + (c.workers().size() == 1 ? "" : "s") + " (data dir " + c.options().dataDir() + ")");
        printNodes(out, c);
    }

    /** {@code kiln local down}. */
    @Command(name = "down", mixinStandardHelpOptions = true,
            description = "Stop the local cluster: SIGTERM each node, wait up to 20 s, then SIGKILL; remove the pid files.")
    static final class Down implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            Path dir = dataDir(dataDir);
            Optional<LocalCluster> existing = LocalCluster.attach(dir);
            if (existing.isEmpty()) {
                out.println("No local Kiln cluster recorded in " + dir + ".");
                out.flush();
                return ExitCodes.OK;
            }
            LocalCluster c = existing.get();
            boolean any = c.anyAlive();
            if (any) {
                out.println("Stopping the local Kiln cluster (" + c.describeNodes() + ")...");
                out.flush();
            }
            c.stop();
            out.println(any ? "Stopped." : "No node was running; removed stale pid files from " + c.options().localDir() + ".");
            out.flush();
            return ExitCodes.OK;
        }
    }

    /** {@code kiln local status}. */
    @Command(name = "status", mixinStandardHelpOptions = true,
            description = "Show the local cluster's processes and whether the coordinator answers (exit 0 if running, 3 if not).")
    static final class Status implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            Path dir = dataDir(dataDir);
            Optional<LocalCluster> existing = LocalCluster.attach(dir);
            if (existing.isEmpty() || !existing.get().anyAlive()) {
                out.println("No local Kiln cluster is running (data dir " + dir + "). Start one with: ./kiln local up");
                out.flush();
                return ExitCodes.API;
            }
            LocalCluster c = existing.get();
            out.println("Local Kiln cluster in " + dir + ":");
            printNodes(out, c);
            KilnClient client = c.client();
            String api;
            try {
                client.ready();
                List<WorkerView> ws = client.cluster();
                api = "ready, " + ws.size() + " worker" + (ws.size() == 1 ? "" : "s") + " joined";
            } catch (KilnException e) {
                api = "not ready: " + e.getMessage();
            }
            out.println("API " + c.apiUrl() + ": " + api);
            out.flush();
            return c.isRunning() ? ExitCodes.OK : ExitCodes.API;
        }
    }

    /** {@code kiln local add-worker}: one more worker JVM (elastic jobs below their maximum take it). */
    @Command(name = "add-worker", mixinStandardHelpOptions = true,
            description = "Start one more worker JVM in the running local cluster; it joins the cluster, and elastic jobs "
                    + "below their maximum of workers take it at their next step boundary.")
    static final class AddWorker implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            LocalCluster c = running(dataDir(dataDir));
            LocalCluster.Node n = c.addWorker();
            out.println("Started " + n.name() + " (pid " + n.pid() + ", log " + n.logFile() + ").");
            out.flush();
            return ExitCodes.OK;
        }
    }

    /** {@code kiln local kill NODE}: what a crash looks like, for trying out fault tolerance. */
    @Command(name = "kill", mixinStandardHelpOptions = true,
            description = "Kill one node of the local cluster (SIGKILL with --force, else SIGTERM), e.g. to watch a "
                    + "running elastic job continue without it: kiln local kill worker-2 --force")
    static final class Kill implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @picocli.CommandLine.Parameters(paramLabel = "NODE", description = "coordinator or worker-N (see kiln local status)")
        String node;

        @Option(names = "--force", description = "SIGKILL instead of SIGTERM.")
        boolean force;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            LocalCluster c = running(dataDir(dataDir));
            if (c.node(node).isEmpty()) throw new UsageException("no node '" + node + "' in the local cluster ("
                + c.describeNodes() + ")");
            c.kill(node, force);
            out.println((force ? "Killed " : "Stopped ") + node + ".");
            out.flush();
            return ExitCodes.OK;
        }
    }

    /** {@code kiln local restart-coordinator}: start the coordinator again (after a crash or a kill). */
    @Command(name = "restart-coordinator", mixinStandardHelpOptions = true,
            description = "Start the local cluster's coordinator again (stopping it first if it runs); it recovers every job "
                    + "from its journal and running jobs re-attach their tasks.")
    static final class RestartCoordinator implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
        Path dataDir;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            LocalCluster c = running(dataDir(dataDir));
            LocalCluster.Node n = c.restartCoordinator();
            out.println("Coordinator restarted (pid " + n.pid() + "); API " + c.apiUrl() + ".");
            out.flush();
            return ExitCodes.OK;
        }
    }

    private static LocalCluster running(Path dir) {
        Optional<LocalCluster> existing = LocalCluster.attach(dir);
        if (existing.isEmpty() || !existing.get().anyAlive()) {
            throw new UsageException("no local Kiln cluster is running (data dir " + dir + "); start one with: kiln local up");
        }
        return existing.get();
    }
}

package io.kiln.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.cli.local.LocalCluster;
import io.kiln.cli.spec.JobSpecs;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnSettings;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln demo}: local cluster + Fashion-MNIST MLP job, followed to the end. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Train an MLP on Fashion-MNIST on a local cluster (started if needed).",
                "Starts a local cluster with 2 workers unless one runs, submits deploy/local/demo-job.yaml, follows it",
                "with a progress bar and prints the test accuracy and the model location. The cluster keeps running."})
public final class DemoCommand implements Callable<Integer> {
    static final Path DATASET = Paths.get("/usr/share/datasets/fashion-mnist");

    @Spec
    CommandSpec spec;

    @Option(names = "--data-dir", paramLabel = "DIR", description = "Data dir (default: KILN_DATA_DIR, else ~/.kiln).")
    Path dataDir;

    @Option(names = "--dataset", paramLabel = "DIR",
            description = "Fashion-MNIST folder (the four idx .gz files); default: ${DEFAULT-VALUE}.",
            defaultValue = "/usr/share/datasets/fashion-mnist")
    Path dataset;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Path data = dataset.toAbsolutePath().normalize();
        if (!Files.isDirectory(data)) {
            err.println("The demo trains on Fashion-MNIST, expected in " + data + ", which is missing.");
            err.println("Install it (Debian package dataset-fashion-mnist):");
            err.println("  sudo apt-get install -y dataset-fashion-mnist");
            err.println("(./kiln demo installs it by itself when run as root.) Then run ./kiln demo again.");
            err.flush();
            return ExitCodes.USAGE;
        }
        Path home = LocalCluster.Options.defaultRepoRoot();
        if (home == null) {
            throw new UsageException("the Kiln checkout is unknown: run the demo through ./kiln (or set KILN_HOME)");
        }
        Path jobFile = home.resolve("deploy/local/demo-job.yaml");
        ObjectNode jobSpec = JobSpecs.load(jobFile);
        jobSpec.withObject("/channels").put("train", data.toString());
        JobSpecs.checkRequired(jobSpec);

        Path dir = LocalCommand.dataDir(dataDir);
        LocalCluster cluster;
        Optional<LocalCluster> existing = LocalCluster.attach(dir);
        if (existing.isPresent() && existing.get().anyAlive()) {
            if (!existing.get().isRunning()) {
                return LocalCommand.reportExisting(existing.get(), out, err);
            }
            cluster = existing.get();
            out.println("Using the local Kiln cluster already running at " + cluster.apiUrl() + ".");
            cluster.awaitReady(0, java.time.Duration.ofSeconds(30), s -> { });
        } else {
            LocalCluster.Options o = LocalCluster.Options.builder().dataDir(dir).workers(2).build();
            try (Spinner sp = new Spinner(err, JobFollower.interactive(), "Starting a local Kiln cluster (1 coordinator, 2 workers)")) {
                cluster = LocalCluster.start(o, sp::update);
            }
            LocalCommand.printStarted(out, cluster);
        }
        out.println();
        out.println("Submitting " + home.relativize(jobFile) + ": " + jobSpec.path("name").asText() + " ("
                + jobSpec.path("algorithm").asText() + ", " + jobSpec.path("hyperparameters").path("epochs").asText("?")
                + " epoch, data " + data + ")");
        out.flush();
        KilnClient client = KilnClient.forSettings(KilnSettings.of(cluster.apiUrl(), dir));
        JobView job = client.createJob(jobSpec);
        int code = new JobFollower(client, out, err, JobFollower.interactive()).follow(job);
        out.println();
        out.println("The local cluster keeps running:");
        out.println("  ./kiln jobs                      list jobs");
        out.println("  ./kiln describe " + job.id() + "   this job in detail");
        out.println("  ./kiln logs " + job.id() + "       its log");
        out.println("  ./kiln local down                stop the cluster");
        LocalCommand.hintDataDir(out, dir);
        out.flush();
        return code;
    }
}

package io.kiln.cli;

import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.KilnSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code kiln serve}: runs a model endpoint in the foreground as its own JVM
 * ({@code io.kiln.deploy.ServeMain} from the built deploy module), so Ctrl-C stops it.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model (or every model under a prefix) over HTTP: SageMaker /invocations and "
                + "Open Inference Protocol v2, bearer-token auth (the token of --data-dir, created when missing).",
                "Example: kiln serve --model ~/.kiln/artifacts/jobs/job-1/model --port 8080"})
public final class ServeCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "URI", description = "Model folder (or .pt file) to serve.")
    String model;

    @Option(names = "--multi-model", paramLabel = "PREFIX",
            description = "Serve every model folder under this prefix, named per request (multi-model endpoint).")
    String multiModel;

    @Option(names = "--name", defaultValue = "model", description = "Name of the single model (OIP v2 paths). Default: ${DEFAULT-VALUE}.")
    String name;

    @Option(names = "--port", defaultValue = "8080", description = "Port (0: any free one). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to listen on. Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--idle-timeout", paramLabel = "DURATION",
            description = "Serverless: unload a model idle this long (e.g. 60s); the next request loads it again.")
    String idleTimeout;

    @Option(names = "--max-concurrency", defaultValue = "64",
            description = "Requests in flight at most; more get 429. Default: ${DEFAULT-VALUE}.")
    int maxConcurrency;

    @Option(names = "--memory-budget-mb", defaultValue = "2048",
            description = "Multi-model: evict least-recently-used models above this (model file sizes). Default: ${DEFAULT-VALUE}.")
    long budgetMb;

    @Option(names = "--max-models", defaultValue = "10000", description = "Multi-model: loaded models at most. Default: ${DEFAULT-VALUE}.")
    int maxModels;

    @Option(names = "--capture-uri", paramLabel = "URI", description = "Data capture: write sampled requests/responses here (JSON lines).")
    String captureUri;

    @Option(names = "--capture-percent", defaultValue = "100", description = "Data capture: percentage sampled. Default: ${DEFAULT-VALUE}.")
    double capturePercent;

    @Option(names = "--data-dir", paramLabel = "DIR", description = "Kiln data dir holding the token. Default: KILN_DATA_DIR, else ~/.kiln.")
    Path dataDir;

    @Option(names = "--jvm-opt", paramLabel = "OPT", description = "Extra JVM option for the server (repeatable), e.g. --jvm-opt=-Xmx2g.")
    List<String> jvmOpts = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        if ((model == null) == (multiModel == null)) throw new UsageException("give exactly one of --model or --multi-model");
        Path repo = LocalCluster.Options.defaultRepoRoot();
        if (repo == null) throw new UsageException("the Kiln checkout is unknown: run through ./kiln or set KILN_HOME");
        KilnSettings settings = KilnSettings.resolve(System.getenv(), dataDir, null);
        List<String> cmd = command(repo, settings);
        ProcessBuilder pb = new ProcessBuilder(cmd).inheritIO();
        if (settings.token() == null) createToken(settings.tokenFile());
        pb.environment().put("KILN_TOKEN", settings.token());
        Process p = pb.start();
        Runtime.getRuntime().addShutdownHook(new Thread(p::destroy)); // Ctrl-C: stop the server too
        return p.waitFor();
    }

    List<String> command(Path repo, KilnSettings settings) {
        List<String> c = new ArrayList<>();
        c.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        c.addAll(jvmOpts);
        c.add("-DDJL_CACHE_DIR=" + repo.resolve(".cache").resolve("djl"));
        c.add("-Dai.djl.offline=true");
        c.add("-Dkiln.data-dir=" + settings.dataDir());
        c.add("-cp");
        c.add(LocalCluster.classpath(repo, "deploy"));
        c.add("io.kiln.deploy.ServeMain");
        if (model != null) c.addAll(List.of("--model", model, "--name", name));
        else c.addAll(List.of("--multi-model", multiModel));
        c.addAll(List.of("--port", Integer.toString(port), "--host", host, "--max-concurrency", Integer.toString(maxConcurrency),
                "--memory-budget-mb", Long.toString(budgetMb), "--max-models", Integer.toString(maxModels)));
        if (idleTimeout != null) c.addAll(List.of("--idle-timeout", idleTimeout));
        if (captureUri != null) c.addAll(List.of("--capture-uri", captureUri, "--capture-percent", Double.toString(capturePercent)));
        return c;
    }

    private static void createToken(Path file) throws IOException {
        byte[] b = new byte[24];
        new SecureRandom().nextBytes(b);
        Files.createDirectories(file.getParent());
        Files.writeString(file, HexFormat.of().formatHex(b) + "\n");
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (UnsupportedOperationException ignored) {
            // not a POSIX file system: the file stays as created
        }
        System.err.println("kiln serve: created the API token " + file);
    }
}

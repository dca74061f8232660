package io.kiln.cli;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.cli.spec.JobSpecs;
import io.kiln.cli.spec.ScriptMode;
import io.kiln.cli.spec.SourcePackage;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln train}: submit a job from a YAML file and/or flags, then follow it. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Submit a training job and follow it with a progress bar.",
                "The job comes from a YAML file of the JobSpec shape (docs/api.md) and/or flags; flags override the file."},
        footer = {"", "Examples:",
                "  kiln train -f deploy/local/demo-job.yaml",
                "  kiln train -f job.yaml --epochs 3 --hp learning_rate=0.1 --workers 2",
                "  kiln train --name fmnist --algorithm mlp --channel train=/usr/share/datasets/fashion-mnist --detach",
                "  kiln train --name my-script --entry-point train.py --source-dir ./src --channel train=/data/train \\",
                "             --hp epochs=3 --metric loss='loss: ([0-9.]+)'      (your own script: docs/script-mode.md)",
                "  kiln train --name my-net --jar model.jar --model-class com.example.MyModel --workers 2 \\",
                "             --channel train=/usr/share/datasets/fashion-mnist      (your own DJL model: docs/java-models.md)"})
public final class TrainCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = {"-f", "--file"}, paramLabel = "FILE", description = "Job file (YAML or JSON, JobSpec shape).")
    Path file;

    @Option(names = "--name", description = "Job name: [a-z0-9-], at most 63 chars.")
    String name;

    @Option(names = "--algorithm", description = "Model definition: mlp or cnn.")
    String algorithm;

    @Option(names = "--channel", paramLabel = "NAME=URI",
            description = "Input channel, e.g. train=/usr/share/datasets/fashion-mnist (repeatable). "
                    + "Relative paths are made absolute.")
    List<String> channels;

    @Option(names = "--hp", paramLabel = "KEY=VALUE", description = "Hyperparameter (repeatable), e.g. learning_rate=0.05.")
    List<String> hyperparameters;

    @Option(names = "--workers", paramLabel = "N", description = "Data-parallel workers (resources.workers).")
    Integer workers;

    @Option(names = "--epochs", paramLabel = "N", description = "Hyperparameter epochs.")
    Integer epochs;

    @Option(names = "--batch-size", paramLabel = "N", description = "Hyperparameter batch_size.")
    Integer batchSize;

    @Option(names = "--output-uri", paramLabel = "URI", description = "Where the model goes (default: the artifact store).")
    String outputUri;

    @Option(names = "--entry-point", paramLabel = "FILE",
            description = "Run your own script under SageMaker's training contract (algorithm script): .py (python3), "
                    + ".sh (bash) or an executable, relative to --source-dir (without it: a local file, packaged alone).")
    String entryPoint;

    @Option(names = "--source-dir", paramLabel = "DIR",
            description = "Folder with the entry point and its modules: packaged (tar.gz, without .git) into "
                    + "<data-dir>/artifacts/sources/<sha256>.tar.gz, where the local cluster's workers read it.")
    Path sourceDir;

    @Option(names = "--metric", paramLabel = "NAME=REGEX",
            description = "Metric to extract from the script's output (repeatable): the first group of REGEX, "
                    + "e.g. loss='loss: ([0-9.]+)'.")
    List<String> metrics;

    @Option(names = "--jar", paramLabel = "FILE",
            description = "Your own Java model (algorithm java): a jar with a class implementing io.kiln.api.KilnModel, "
                    + "trained by Kiln's data-parallel loop (docs/java-models.md). Needs --model-class.")
    Path jar;

    @Option(names = "--model-class", paramLabel = "CLASS", description = "The KilnModel class in --jar, e.g. com.example.MyModel.")
    String modelClass;

    @Option(names = {"-d", "--detach"}, description = "Print the job id and return without following.")
    boolean detach;

    @Option(names = "--dry-run", description = "Print the JobSpec JSON that would be sent, and exit.")
    boolean dryRun;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ObjectNode jobSpec = buildSpec(Paths.get("").toAbsolutePath());
        if (dryRun) {
            out.println(JobSpecs.toJson(jobSpec));
            out.flush();
            return ExitCodes.OK;
        }
        KilnClient client = api.client();
        JobView job = client.createJob(jobSpec);
        if (detach) {
            out.println(job.id());
            out.flush();
            err.println("Submitted " + job.id() + " (" + job.status() + "). Follow it with: ./kiln logs -f " + job.id()
                    + "  or  ./kiln describe " + job.id());
            err.flush();
            return ExitCodes.OK;
        }
        return new JobFollower(client, out, err, JobFollower.interactive()).follow(job);
    }

    /**
     * {@code --entry-point}, {@code --source-dir}, {@code --metric}: packages the source into the local
     * artifact store ({@code <data-dir>/artifacts}, the coordinator's default {@code kiln.artifacts.root};
     * not written on {@code --dry-run}) and sets algorithm {@code script} with its reserved hyperparameters.
     */
    private void applyScript(ObjectNode result, Path cwd) {
        String metricJson = ScriptMode.metricDefinitions(metrics);
        if (entryPoint == null && sourceDir == null) {
            if (metricJson != null) {
                if (!ScriptMode.ALGORITHM.equals(result.path("algorithm").asText(""))) {
                    throw new io.kiln.cli.UsageException("--metric is for scripts (--entry-point, or algorithm: script)");
                }
                ScriptMode.apply(result, null, null, metricJson);
            }
            return;
        }
        ScriptMode.Source source = ScriptMode.resolve(entryPoint, sourceDir, cwd);
        Path artifactRoot = api.settings().dataDir().resolve("artifacts");
        SourcePackage pkg;
        try {
            pkg = SourcePackage.of(source.packageRoot());
        } catch (java.io.IOException e) {
            throw new io.kiln.cli.UsageException("cannot package " + source.packageRoot() + ": " + e.getMessage());
        }
        try {
            io.kiln.cli.spec.CodeUpload.Placed placed = io.kiln.cli.spec.CodeUpload.place(pkg.archive(), pkg.sha256(),
                    ".tar.gz", api.settings(), dryRun);
            PrintWriter err = spec.commandLine().getErr();
            err.println(String.format(java.util.Locale.ROOT, "%s %s (%d files, %.1f kB) as %s%s", dryRun ? "Would package"
                    : "Packaged", source.packageRoot(), pkg.files(), pkg.bytes() / 1e3, placed.uri(),
                    placed.uploaded() ? (dryRun ? " (would upload to " : " (uploaded to ") + api.settings().apiUrl() + ")" : ""));
            err.flush();
            ScriptMode.apply(result, source.program(), placed.uri().toString(), metricJson);
        } catch (java.io.IOException | io.kiln.sdk.KilnException e) {
            throw new io.kiln.cli.UsageException("cannot store the source package (" + (io.kiln.cli.spec.CodeUpload
                    .isLocal(api.settings()) ? "in " + artifactRoot : "through " + api.settings().apiUrl()) + "): "
                    + e.getMessage());
        } finally {
            pkg.delete();
        }
    }

    /**
     * {@code --jar}, {@code --model-class}: stores the jar as {@code sources/<sha256>.jar} (locally or
     * through the upload API, see {@link io.kiln.cli.spec.CodeUpload}) and sets algorithm {@code java}.
     */
    private void applyJar(ObjectNode result, Path cwd) {
        if (jar == null && modelClass == null) return;
        if (jar == null || modelClass == null || modelClass.isBlank()) {
            throw new io.kiln.cli.UsageException("--jar and --model-class go together (the jar and its KilnModel class)");
        }
        if (entryPoint != null) throw new io.kiln.cli.UsageException("--jar and --entry-point exclude each other");
        String current = result.path("algorithm").asText("");
        if (!current.isEmpty() && !current.equals("java")) {
            throw new io.kiln.cli.UsageException("--jar trains a Java model: the algorithm must be 'java', not '" + current + "'");
        }
        Path file = cwd.resolve(jar).toAbsolutePath().normalize();
        if (!java.nio.file.Files.isRegularFile(file)) throw new io.kiln.cli.UsageException("--jar " + jar + " not found");
        try {
            io.kiln.cli.spec.CodeUpload.Placed placed = io.kiln.cli.spec.CodeUpload.place(file,
                    io.kiln.cli.spec.CodeUpload.sha256(file), ".jar", api.settings(), dryRun);
            PrintWriter err = spec.commandLine().getErr();
            err.println((dryRun ? "Would store " : "Stored ") + file + " as " + placed.uri()
                    + (placed.uploaded() ? " (through " + api.settings().apiUrl() + ")" : ""));
            err.flush();
            result.put("algorithm", "java");
            ObjectNode hp = result.get("hyperparameters") instanceof ObjectNode h ? h : result.putObject("hyperparameters");
            hp.put("kiln_jar", placed.uri().toString());
            hp.put("kiln_model_class", modelClass.trim());
        } catch (java.io.IOException | io.kiln.sdk.KilnException e) {
            throw new io.kiln.cli.UsageException("cannot store the model jar: " + e.getMessage());
        }
    }

    /** File, then flags, then the required-field check. */
    ObjectNode buildSpec(Path cwd) {
        if (file == null && name == null && algorithm == null && channels == null && entryPoint == null && jar == null) {
            throw new io.kiln.cli.UsageException("give a job file (-f job.yaml) or at least --name, --algorithm and "
                    + "--channel train=...");
        }
        ObjectNode base = file != null ? JobSpecs.load(file) : JsonNodeFactory.instance.objectNode();
        JobSpecs.Overrides o = new JobSpecs.Overrides();
        o.name = name;
        o.algorithm = algorithm;
        o.channels = JobSpecs.parseKeyValues(channels, "--channel");
        o.hyperparameters = JobSpecs.parseKeyValues(hyperparameters, "--hp");
        o.workers = workers;
        o.epochs = epochs;
        o.batchSize = batchSize;
        o.outputUri = outputUri;
        ObjectNode result = JobSpecs.apply(base, o, cwd);
        applyScript(result, cwd);
        applyJar(result, cwd);
        JobSpecs.checkRequired(result);
        return result;
    }
}

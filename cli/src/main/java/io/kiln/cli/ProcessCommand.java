package io.kiln.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.cli.spec.CodeUpload;
import io.kiln.cli.spec.JobSpecs;
import io.kiln.cli.spec.ScriptMode;
import io.kiln.cli.spec.SourcePackage;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnException;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln process}: a processing job (data preparation under SageMaker Processing's contract). */
@Command(name = "process", mixinStandardHelpOptions = true,
        description = {"Run your own data-preparation code as a processing job (docs/processing.md).",
                "Inputs are linked into processing/input/<name>/; what the code writes to processing/output/<name>/ is "
                        + "uploaded to the artifact store."},
        footer = {"", "Examples:",
                "  kiln process --name prep --entry-point prep.py --source-dir ./src --input raw=/data/raw \\",
                "               --output train --output test=/srv/datasets/test --arg --test-fraction --arg 0.2"})
public final class ProcessCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = "--name", required = true, description = "Job name: [a-z0-9-], at most 63 chars.")
    String name;

    @Option(names = "--entry-point", required = true, paramLabel = "FILE",
            description = "The code: .py (python3), .sh (bash) or an executable, relative to --source-dir.")
    String entryPoint;

    @Option(names = "--source-dir", paramLabel = "DIR", description = "Folder with the entry point and its modules.")
    Path sourceDir;

    @Option(names = "--input", paramLabel = "NAME=URI", description = "Input (repeatable): linked into "
            + "processing/input/NAME/ (env KILN_INPUT_NAME). Relative paths are made absolute.")
    List<String> inputs;

    @Option(names = "--output", paramLabel = "NAME[=URI]", description = "Output (repeatable): processing/output/NAME/ "
            + "(env KILN_OUTPUT_NAME), uploaded to URI, default <job folder>/output/NAME/.")
    List<String> outputs;

    @Option(names = "--arg", paramLabel = "ARG", description = "An argument of the entry point (repeatable, in order).")
    List<String> arguments;

    @Option(names = "--env", paramLabel = "KEY=VALUE", description = "An environment variable of the code (repeatable).")
    List<String> environment;

    @Option(names = "--metric", paramLabel = "NAME=REGEX", description = "Metric read from the output (repeatable).")
    List<String> metrics;

    @Option(names = "--max-runtime", paramLabel = "SECONDS", description = "Stop the job after this long.")
    Long maxRuntime;

    @Option(names = "--memory-mb", paramLabel = "MB", description = "Memory limit of the process tree.")
    Integer memoryMb;

    @Option(names = "--cpus", paramLabel = "N", description = "CPUs reserved and its CPU quota (default 1).")
    Integer cpus;

    @Option(names = {"-d", "--detach"}, description = "Print the job id and return without following.")
    boolean detach;

    @Option(names = "--dry-run", description = "Print the JobSpec JSON that would be sent, and exit.")
    boolean dryRun;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ObjectNode job = buildSpec(Paths.get("").toAbsolutePath());
        if (dryRun) {
            out.println(JobSpecs.toJson(job));
            out.flush();
            return ExitCodes.OK;
        }
        KilnClient client = api.client();
        JobView created = client.createJob(job);
        if (detach) {
            out.println(created.id());
            out.flush();
            return ExitCodes.OK;
        }
        int code = new JobFollower(client, out, err, JobFollower.interactive()).follow(created);
        client.getJob(created.id()).outputs().forEach((n, uri) -> out.println("  output " + n + "  " + uri));
        out.flush();
        return code;
    }

    ObjectNode buildSpec(Path cwd) {
        ObjectNode s = JsonNodeFactory.instance.objectNode();
        s.put("name", name);
        s.put("algorithm", "processing");
        ObjectNode hp = s.putObject("hyperparameters");
        JobSpecs.parseKeyValues(environment, "--env").forEach(hp::put);
        ObjectNode channels = s.putObject("channels");
        JobSpecs.parseKeyValues(inputs, "--input").forEach((k, v) -> channels.put(k, JobSpecs.channelUri(v, cwd)));
        ObjectNode outs = JsonNodeFactory.instance.objectNode();
        for (String o : outputs == null ? List.<String>of() : outputs) {
            int eq = o.indexOf('=');
            String n = (eq < 0 ? o : o.substring(0, eq)).trim();
            if (n.isEmpty()) throw new UsageException("--output expects NAME or NAME=URI, got '" + o + "'");
            outs.put(n, eq < 0 || o.substring(eq + 1).isBlank() ? "" : JobSpecs.channelUri(o.substring(eq + 1), cwd));
        }
        ArrayNode args = JsonNodeFactory.instance.arrayNode();
        (arguments == null ? List.<String>of() : arguments).forEach(args::add);
        ObjectMapper m = KilnClient.MAPPER;
        try {
            if (!outs.isEmpty()) hp.put("kiln_processing_outputs", m.writeValueAsString(outs));
            if (!args.isEmpty()) hp.put("kiln_processing_arguments", m.writeValueAsString(args));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        ObjectNode res = s.putObject("resources");
        res.put("workers", 1);
        if (cpus != null) res.put("cpusPerWorker", cpus);
        if (memoryMb != null) res.put("memoryMbPerWorker", memoryMb);
        if (maxRuntime != null) s.putObject("stopping").put("maxRuntimeSeconds", maxRuntime);
        ScriptMode.Source source = ScriptMode.resolve(entryPoint, sourceDir, cwd);
        SourcePackage pkg;
        try {
            pkg = SourcePackage.of(source.packageRoot());
        } catch (IOException e) {
            throw new UsageException("cannot package " + source.packageRoot() + ": " + e.getMessage());
        }
        try {
            CodeUpload.Placed placed = CodeUpload.place(pkg.archive(), pkg.sha256(), ".tar.gz", api.settings(), dryRun);
            PrintWriter err = spec.commandLine().getErr();
            err.println(String.format(Locale.ROOT, "%s %s (%d files, %.1f kB) as %s", dryRun ? "Would package" : "Packaged",
                    source.packageRoot(), pkg.files(), pkg.bytes() / 1e3, placed.uri()));
            err.flush();
            ScriptMode.apply(s.put("algorithm", ScriptMode.ALGORITHM), source.program(), placed.uri().toString(),
                    ScriptMode.metricDefinitions(metrics));
            s.put("algorithm", "processing");
        } catch (IOException | KilnException e) {
            throw new UsageException("cannot store the source package: " + e.getMessage());
        } finally {
            pkg.delete();
        }
        return s;
    }
}

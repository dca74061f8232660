package io.kiln.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln batch-transform} and {@code kiln transform-jobs}: batch transform (docs/serving.md "Batch transform"). */
@Command(name = "batch-transform", mixinStandardHelpOptions = true,
        description = {"Run a model over a dataset (CSV, JSON lines, IDX) in parallel splits; results beside it.",
                "Example: kiln batch-transform --model ~/.kiln/artifacts/jobs/JOB/model --input /data/rows.csv --splits 2",
                "         kiln batch-transform --model-group churn --input /data/batch/   (the latest Approved version)"})
public final class BatchTransformCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = "--name", description = "Job name (default: generated).")
    String name;

    @Option(names = "--model", paramLabel = "URI", description = "Model folder (path or file: URI).")
    String model;

    @Option(names = "--model-group", paramLabel = "GROUP", description = "Registry group (latest Approved unless --version).")
    String group;

    @Option(names = "--version", paramLabel = "N", description = "Registry version.")
    Integer version;

    @Option(names = "--input", required = true, paramLabel = "PATH", description = "Input file or folder.")
    String input;

    @Option(names = "--output", paramLabel = "DIR", description = "Output folder (default: beside the input).")
    String output;

    @Option(names = "--content-type", description = "text/csv, application/jsonlines or idx (default: from the file name).")
    String contentType;

    @Option(names = "--splits", defaultValue = "2", description = "Parallel splits. Default: ${DEFAULT-VALUE}.")
    int splits;

    @Option(names = "--max-retries", defaultValue = "2", description = "Retries of a failed split. Default: ${DEFAULT-VALUE}.")
    int maxRetries;

    @Option(names = "--no-wait", description = "Return once submitted.")
    boolean noWait;

    @Override
    public Integer call() throws Exception {
        if ((model == null) == (group == null)) throw new UsageException("give exactly one of --model URI or --model-group GROUP");
        Map<String, Object> body = new LinkedHashMap<>();
        if (name != null) body.put("name", name);
        if (model != null) body.put("modelUri", model.contains(":") ? model : abs(model));
        else {
            body.put("modelGroup", group);
            if (version != null) body.put("version", version);
        }
        body.put("input", input.contains(":") ? input : abs(input));
        if (output != null) body.put("output", output.contains(":") ? output : abs(output));
        if (contentType != null) body.put("contentType", contentType);
        body.put("splits", splits);
        body.put("maxRetries", maxRetries);
        KilnClient c = api.client();
        JsonNode job = c.postJson("/api/v1/transform-jobs", body);
        String id = job.path("name").asText();
        PrintWriter out = spec.commandLine().getOut();
        out.println("Transform job " + id + " submitted: " + splits + " split(s)");
        if (noWait) return ExitCodes.OK;
        long deadline = System.nanoTime() + java.time.Duration.ofHours(2).toNanos();
        while (job.path("status").asText().equals("InProgress") && System.nanoTime() < deadline) {
            Thread.sleep(500);
            job = c.getJson(path(id));
        }
        print(out, job);
        return job.path("status").asText().equals("Completed") ? ExitCodes.OK : ExitCodes.JOB_FAILED;
    }

    static String path(String id) {
        return "/api/v1/transform-jobs/" + URLEncoder.encode(id, StandardCharsets.UTF_8);
    }

    static void print(PrintWriter out, JsonNode job) {
        out.println(job.path("name").asText() + ": " + job.path("status").asText() + ", rows done "
                + job.path("rowsDone").asLong() + ", rows failed " + job.path("rowsFailed").asLong()
                + (job.has("failureReason") ? " (" + job.path("failureReason").asText() + ")" : ""));
        for (JsonNode s : job.path("splitDetails")) {
            out.println("  split " + s.path("split").asInt() + ": rows done " + s.path("rowsDone").asLong() + ", failed "
                    + s.path("rowsFailed").asLong() + ", attempts " + s.path("attempts").asInt()
                    + (s.has("lastError") ? ", last error: " + s.path("lastError").asText() : ""));
        }
        for (JsonNode o : job.path("outputs")) out.println("  output " + o.asText());
    }

    private static String abs(String p) {
        return Path.of(p).toAbsolutePath().normalize().toString();
    }

    /** {@code kiln transform-jobs [ID]}: list, or describe one. */
    @Command(name = "transform-jobs", mixinStandardHelpOptions = true, description = "List batch transform jobs, or describe one.")
    public static final class List implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        @Parameters(arity = "0..1", paramLabel = "ID")
        String id;

        @Override
        public Integer call() {
            KilnClient c = api.client();
            PrintWriter out = spec.commandLine().getOut();
            if (id != null) {
                print(out, c.getJson(path(id)));
                return ExitCodes.OK;
            }
            JsonNode all = c.getJson("/api/v1/transform-jobs");
            JsonNode items = all.isArray() ? all : all.path("transformJobs");
            for (JsonNode j : items) {
                out.println(j.path("name").asText() + "  " + j.path("status").asText() + "  rows done "
                        + j.path("rowsDone").asLong() + ", failed " + j.path("rowsFailed").asLong());
            }
            return ExitCodes.OK;
        }
    }
}

package io.kiln.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.HistoryEntry;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.Progress;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln describe JOB}: a job's fields, progress, metrics, model, failure and history. */
@Command(name = "describe", mixinStandardHelpOptions = true, description = "Show one job in detail.")
public final class DescribeCommand implements Callable<Integer> {
    enum Output { text, json }

    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Parameters(paramLabel = "JOB", description = "Job id.")
    String jobId;

    @Option(names = {"-o", "--output"}, paramLabel = "FORMAT", defaultValue = "text",
            description = "text (default) or json (the API's JobView).")
    Output output;

    @Override
    public Integer call() throws JsonProcessingException {
        PrintWriter out = spec.commandLine().getOut();
        KilnClient client = api.client();
        JsonNode raw = client.getJson(KilnClient.jobPath(jobId));
        if (output == Output.json) {
            out.println(KilnClient.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(raw));
        } else {
            out.print(render(KilnClient.MAPPER.treeToValue(raw, JobView.class)));
        }
        out.flush();
        return ExitCodes.OK;
    }

    static String render(JobView j) {
        StringBuilder sb = new StringBuilder();
        field(sb, "Job", j.id());
        field(sb, "Name", j.name());
        field(sb, "Status", j.status());
        JsonNode spec = j.spec();
        if (spec != null && !spec.isMissingNode() && !spec.isNull()) {
            field(sb, "Algorithm", spec.path("algorithm").asText(""));
            field(sb, "Hyperparameters", pairs(spec.path("hyperparameters")));
            field(sb, "Channels", pairs(spec.path("channels")));
            field(sb, "Resources", pairs(spec.path("resources")));
            String stop = pairs(spec.path("stopping"));
            if (!"-".equals(stop)) {
                field(sb, "Stopping", stop);
            }
        }
        field(sb, "Submitted", Fmt.dateTime(j.submittedAt()));
        field(sb, "Started", Fmt.dateTime(j.startedAt()));
        field(sb, "Ended", Fmt.dateTime(j.endedAt()));
        String took = Fmt.duration(j.startedAt(), j.endedAt());
        if (took != null) {
            field(sb, "Duration", took);
        }
        field(sb, "Workers", j.workers().isEmpty() ? "-" : String.join(", ", j.workers()));
        Progress p = j.progress();
        if (p != null && p.totalSteps() > 0) {
            field(sb, "Progress", Fmt.progress(p) + (p.totalEpochs() > 0 ? ", epoch " + p.epoch() + "/" + p.totalEpochs() : ""));
            field(sb, "Throughput", String.format(Locale.ROOT,
                    "loss %.4f, %.0f samples/s, compute %.2f ms/step, communication %.2f ms/step",
                    p.loss(), p.samplesPerSec(), p.computeMsPerStep(), p.commMsPerStep()));
        } else {
            field(sb, "Progress", "-");
        }
        field(sb, "Metrics", metrics(j.metrics()));
        if (j.outputs().isEmpty()) {
            field(sb, "Model", j.modelUri());
        } else {
            j.outputs().forEach((name, uri) -> field(sb, "Output " + name, uri));
        }
        if (j.failureReason() != null && !j.failureReason().isBlank()) {
            field(sb, "Failure", j.failureReason());
        }
        if (!j.history().isEmpty()) {
            sb.append("\nHistory:\n");
            Table t = new Table("  AT", "EVENT", "DETAIL");
            for (HistoryEntry h : j.history()) {
                t.row("  " + Fmt.dateTime(h.at()), h.event(), h.detail());
            }
            sb.append(t.render());
        }
        return sb.toString();
    }

    private static void field(StringBuilder sb, String name, String value) {
        sb.append(String.format(Locale.ROOT, "%-17s%s%n", name + ":", Fmt.dash(value)));
    }

    private static String pairs(JsonNode obj) {
        if (obj == null || !obj.isObject() || obj.size() == 0) {
            return "-";
        }
        List<String> parts = new ArrayList<>();
        Iterator<Map.Entry<String, JsonNode>> it = obj.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            parts.add(e.getKey() + "=" + (e.getValue().isValueNode() ? e.getValue().asText() : e.getValue().toString()));
        }
        return String.join(", ", parts);
    }

    private static String metrics(Map<String, Object> m) {
        if (m == null || m.isEmpty()) {
            return "-";
        }
        List<String> parts = new ArrayList<>();
        m.forEach((k, v) -> parts.add(k + "=" + (v instanceof Double || v instanceof Float
                ? String.format(Locale.ROOT, "%.4f", ((Number) v).doubleValue()) : String.valueOf(v))));
        return String.join(", ", parts);
    }
}

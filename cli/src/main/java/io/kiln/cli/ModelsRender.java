package io.kiln.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.ModelGroupView;
import io.kiln.sdk.ModelVersionView;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/** Text views of {@code kiln models describe}. */
final class ModelsRender {
    private ModelsRender() {
    }

    static String group(ModelGroupView g) {
        StringBuilder sb = new StringBuilder();
        field(sb, "Group", g.name());
        field(sb, "Description", g.description());
        field(sb, "Created", Fmt.dateTime(g.createdAt()) + " by " + g.createdBy());
        field(sb, "Latest approved", g.latestApprovedVersion() == null ? "-" : "version " + g.latestApprovedVersion());
        if (g.versions().isEmpty()) {
            sb.append("\nNo versions yet. Register one with: kiln models register ").append(g.name())
                    .append(" --job JOB_ID\n");
            return sb.toString();
        }
        sb.append("\nVersions:\n");
        Table t = new Table("  VERSION", "STATUS", "FRAMEWORK", "METRICS", "REGISTERED", "ARTIFACT");
        for (ModelVersionView v : g.versions()) {
            t.row("  " + v.version(), v.status(), v.framework(), metrics(headline(v.metrics())), Fmt.dateTime(v.registeredAt()),
                    v.artifactUri());
        }
        sb.append(t.render());
        sb.append("\nApproval history:\n");
        Table h = new Table("  VERSION", "AT", "STATUS", "BY", "REASON");
        for (ModelVersionView v : g.versions()) {
            for (ModelVersionView.ApprovalChange c : v.approvalHistory()) {
                h.row("  " + v.version(), Fmt.dateTime(c.at()), c.status(), c.by(), c.reason());
            }
        }
        return sb.append(h.render()).toString();
    }

    static String version(ModelVersionView v) {
        StringBuilder sb = new StringBuilder();
        field(sb, "Group", v.group());
        field(sb, "Version", String.valueOf(v.version()));
        field(sb, "Status", v.status());
        field(sb, "Framework", v.framework());
        field(sb, "Artifact", v.artifactUri());
        field(sb, "Description", v.description());
        field(sb, "Metrics", metrics(v.metrics()));
        field(sb, "Inputs", tensors(v.signature() == null ? null : v.signature().path("inputs")));
        field(sb, "Outputs", tensors(v.signature() == null ? null : v.signature().path("outputs")));
        JsonNode l = v.lineage();
        if (l != null) {
            field(sb, "Training job", l.path("trainingJobId").asText("") + nameOf(l));
            field(sb, "Channels", pairs(l.path("channels")));
            field(sb, "Hyperparameters", pairs(l.path("hyperparameters")));
            field(sb, "Source", l.path("sourceUri").asText(""));
            field(sb, "Trained", Fmt.dateTime(l.path("trainedAt").asText("")) + by(l.path("trainedBy").asText("")));
        }
        field(sb, "Registered", Fmt.dateTime(v.registeredAt()) + by(v.registeredBy()));
        sb.append("\nApproval history:\n");
        Table h = new Table("  AT", "STATUS", "BY", "REASON");
        for (ModelVersionView.ApprovalChange c : v.approvalHistory()) {
            h.row("  " + Fmt.dateTime(c.at()), c.status(), c.by(), c.reason());
        }
        return sb.append(h.render()).toString();
    }

    /** The metrics that judge a model (test and validation ones), else the first two: a table column stays short. */
    private static Map<String, Double> headline(Map<String, Double> all) {
        Map<String, Double> m = new TreeMap<>();
        all.forEach((k, val) -> {
            if (k.startsWith("test_") || k.startsWith("validation_")) {
                m.put(k, val);
            }
        });
        if (m.isEmpty()) {
            new TreeMap<>(all).entrySet().stream().limit(2).forEach(e -> m.put(e.getKey(), e.getValue()));
        }
        return m;
    }

    private static String nameOf(JsonNode l) {
        String n = l.path("trainingJobName").asText("");
        return n.isEmpty() ? "" : " (" + n + ")";
    }

    private static String by(String who) {
        return who == null || who.isBlank() ? "" : " by " + who;
    }

    private static String tensors(JsonNode arr) {
        if (arr == null || !arr.isArray() || arr.isEmpty()) {
            return "-";
        }
        List<String> parts = new ArrayList<>();
        arr.forEach(t -> parts.add(t.path("name").asText() + " " + t.path("datatype").asText() + " " + t.path("shape")));
        return String.join(", ", parts);
    }

    private static String pairs(JsonNode obj) {
        if (obj == null || !obj.isObject() || obj.isEmpty()) {
            return "-";
        }
        Map<String, String> m = new TreeMap<>();
        obj.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
        List<String> parts = new ArrayList<>();
        m.forEach((k, val) -> parts.add(k + "=" + val));
        return String.join(", ", parts);
    }

    private static String metrics(Map<String, Double> m) {
        if (m.isEmpty()) {
            return "-";
        }
        List<String> parts = new ArrayList<>();
        new TreeMap<>(m).forEach((k, val) -> parts.add(k + "=" + String.format(Locale.ROOT, "%.4f", val)));
        return String.join(", ", parts);
    }

    private static void field(StringBuilder sb, String name, String value) {
        sb.append(String.format(Locale.ROOT, "%-17s%s%n", name + ":", Fmt.dash(value)));
    }
}

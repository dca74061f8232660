package io.kiln.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln deploy}: a coordinator-managed endpoint with one variant (docs/serving.md "Managed endpoints"). */
@Command(name = "deploy", mixinStandardHelpOptions = true,
        description = {"Deploy a model as a real-time endpoint managed by the coordinator (replicas, router, blue/green).",
                "Example: kiln deploy --name churn --model-group churn          (the latest Approved version)",
                "         kiln deploy --name km --model /srv/models/km --instances 2"})
public final class DeployCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = "--name", required = true, description = "Endpoint name (letters, digits, '-').")
    String name;

    @ArgGroup(multiplicity = "1")
    Model model;

    @Option(names = "--instances", defaultValue = "1", description = "Replicas. Default: ${DEFAULT-VALUE}.")
    int instances;

    @Option(names = "--max-instances", description = "Autoscale up to this many replicas on load (default: --instances).")
    Integer maxInstances;

    @Option(names = "--variant", defaultValue = "primary", description = "Variant name. Default: ${DEFAULT-VALUE}.")
    String variant;

    @Option(names = "--no-wait", description = "Return at once instead of waiting until InService or Failed.")
    boolean noWait;

    @Option(names = "--multi-model", description = "Serve every model under the --model prefix, named per request "
            + "(kiln invoke --target-model); loaded on demand, evicted least-recently-used.")
    boolean multiModel;

    @Option(names = "--idle-timeout", paramLabel = "DURATION", description = "Serverless: unload models idle this long "
            + "(e.g. 60s); the next request loads them again.")
    String idleTimeout;

    @Option(names = "--max-concurrency", paramLabel = "N", description = "Requests in flight per replica; more get 429.")
    Integer maxConcurrency;

    @Option(names = "--memory-mb", paramLabel = "MB", description = "Memory per replica (process limit and model budget).")
    Long memoryMb;

    /** The model: a folder, or a registry group (latest Approved unless --version). */
    static final class Model {
        @Option(names = "--model", paramLabel = "URI", required = true, description = "Model folder (path or file: URI).")
        String uri;

        @ArgGroup(exclusive = false)
        Group group;
    }

    static final class Group {
        @Option(names = "--model-group", paramLabel = "GROUP", required = true, description = "Registry group.")
        String name;

        @Option(names = "--version", paramLabel = "N", description = "Version (default: the latest Approved).")
        Integer version;
    }

    @Override
    public Integer call() {
        KilnClient c = api.client();
        Map<String, Object> v = variant(variant, model, instances, maxInstances, 1);
        if (multiModel) {
            if (model.uri == null) throw new UsageException("--multi-model needs --model PREFIX (a folder of model folders)");
            v.put("multiModel", true);
        }
        Map<String, Object> body = new LinkedHashMap<>(Map.of("name", name, "variants", List.of(v)));
        if (idleTimeout != null) body.put("idleTimeout", idleTimeout);
        if (maxConcurrency != null) body.put("maxConcurrency", maxConcurrency);
        if (memoryMb != null) body.put("memoryMb", memoryMb);
        c.createEndpoint(body);
        return EndpointsCommand.report(c, name, noWait, spec.commandLine().getOut(), "Deploying");
    }

    static Map<String, Object> variant(String name, Model m, int instances, Integer max, double weight) {
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("name", name);
        if (m.uri != null) {
            v.put("modelUri", m.uri.contains(":") ? m.uri : Path.of(m.uri).toAbsolutePath().normalize().toString());
        } else {
            v.put("modelGroup", m.group.name);
            v.put("version", m.group.version == null ? "latestApproved" : m.group.version);
        }
        v.put("weight", weight);
        v.put("instances", instances);
        if (max != null) v.put("maxInstances", max);
        return v;
    }

    static final Duration WAIT = Duration.ofMinutes(5);

    static String summary(JsonNode e) {
        return e.path("name").asText() + ": " + e.path("status").asText()
                + (e.has("failureReason") ? " (" + e.path("failureReason").asText() + ")" : "");
    }
}

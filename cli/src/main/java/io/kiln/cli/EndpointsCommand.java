package io.kiln.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln endpoints [list|describe|update|delete]}: coordinator-managed endpoints. */
@Command(name = "endpoints", mixinStandardHelpOptions = true,
        description = "Coordinator-managed real-time endpoints (kiln deploy creates one).",
        subcommands = {EndpointsCommand.ListCmd.class, EndpointsCommand.Describe.class, EndpointsCommand.Update.class,
                EndpointsCommand.Delete.class, CommandLine.HelpCommand.class})
public final class EndpointsCommand implements Callable<Integer> {
    @Mixin
    ApiOptions api;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        return list(api.client(), spec.commandLine().getOut());
    }

    static int list(KilnClient c, PrintWriter out) {
        List<JsonNode> all = c.listEndpoints();
        if (all.isEmpty()) {
            out.println("No endpoints. Create one with: kiln deploy --name NAME --model-group GROUP");
        } else {
            Table t = new Table("ENDPOINT", "STATUS", "VARIANTS", "REPLICAS", "IN FLIGHT", "UPDATED");
            for (JsonNode e : all) {
                StringBuilder vs = new StringBuilder();
                e.path("variants").forEach(v -> vs.append(vs.isEmpty() ? "" : ", ").append(v.path("name").asText())
                        .append(" (w ").append(v.path("weight").asDouble()).append(")"));
                t.row(e.path("name").asText(), e.path("status").asText(), vs, e.path("replicas").size(),
                        e.path("inFlight").asInt(), e.path("updatedAt").asText());
            }
            out.print(t.render());
        }
        out.flush();
        return ExitCodes.OK;
    }

    /** Waits (unless noWait) and prints the outcome; exit API when the endpoint failed. */
    static int report(KilnClient c, String name, boolean noWait, PrintWriter out, String verb) {
        out.println(verb + " endpoint " + name + "...");
        out.flush();
        if (noWait) return ExitCodes.OK;
        JsonNode e = c.awaitEndpoint(name, DeployCommand.WAIT);
        out.println(DeployCommand.summary(e));
        e.path("replicas").forEach(r -> out.println("  replica " + r.path("variant").asText() + " " + r.path("url").asText()
                + " pid " + r.path("pid").asLong()));
        if (e.path("status").asText().equals("InService")) {
            out.println("Invoke: kiln invoke " + name + " --data '{\"instances\": [[...]]}'");
        }
        out.flush();
        return e.path("status").asText().equals("Failed") ? ExitCodes.API : ExitCodes.OK;
    }

    abstract static class Sub implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        PrintWriter out() {
            return spec.commandLine().getOut();
        }
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "List endpoints.")
    static final class ListCmd extends Sub {
        @Override
        public Integer call() {
            return list(api.client(), out());
        }
    }

    @Command(name = "describe", mixinStandardHelpOptions = true, description = "An endpoint's status, variants, replicas, history.")
    static final class Describe extends Sub {
        @Parameters(paramLabel = "NAME")
        String name;

        @Option(names = {"-o", "--output"}, defaultValue = "text", description = "text or json.")
        String output;

        @Override
        public Integer call() throws Exception {
            JsonNode e = api.client().getEndpoint(name);
            if (output.equals("json")) {
                out().println(KilnClient.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(e));
                out().flush();
                return ExitCodes.OK;
            }
            StringBuilder b = new StringBuilder();
            b.append("Endpoint:    ").append(DeployCommand.summary(e)).append('\n');
            b.append("Generation:  ").append(e.path("generation").asLong()).append("   in flight: ").append(e.path("inFlight").asInt()).append('\n');
            Table t = new Table("VARIANT", "MODEL", "WEIGHT", "INSTANCES", "MIN..MAX");
            e.path("variants").forEach(v -> t.row(v.path("name").asText(), v.has("modelGroup")
                    ? v.path("modelGroup").asText() + " v" + v.path("modelVersion").asInt() : v.path("modelUri").asText(),
                    v.path("weight").asDouble(), v.path("currentInstances").asInt(),
                    v.path("instances").asInt() + ".." + v.path("maxInstances").asInt()));
            b.append(t.render());
            e.path("replicas").forEach(r -> b.append("  replica ").append(r.path("variant").asText()).append(' ')
                    .append(r.path("url").asText()).append(" pid ").append(r.path("pid").asLong()).append(" in flight ")
                    .append(r.path("inFlight").asInt()).append('\n'));
            b.append("History:\n");
            e.path("history").forEach(h -> b.append("  ").append(h.asText()).append('\n'));
            out().print(b);
            out().flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "update", mixinStandardHelpOptions = true,
            description = "Blue/green: serve another model (one variant); the old replicas drain after the new ones are ready.")
    static final class Update extends Sub {
        @Parameters(paramLabel = "NAME")
        String name;

        @ArgGroup(multiplicity = "1")
        DeployCommand.Model model;

        @Option(names = "--instances", defaultValue = "1")
        int instances;

        @Option(names = "--max-instances")
        Integer maxInstances;

        @Option(names = "--variant", defaultValue = "primary")
        String variant;

        @Option(names = "--no-wait")
        boolean noWait;

        @Override
        public Integer call() {
            KilnClient c = api.client();
            c.updateEndpoint(name, Map.of("variants", List.of(DeployCommand.variant(variant, model, instances, maxInstances, 1))));
            return report(c, name, noWait, out(), "Updating");
        }
    }

    @Command(name = "delete", mixinStandardHelpOptions = true, description = "Delete an endpoint and stop its replicas.")
    static final class Delete extends Sub {
        @Parameters(paramLabel = "NAME")
        String name;

        @Override
        public Integer call() {
            api.client().deleteEndpoint(name);
            out().println("Deleted endpoint " + name);
            out().flush();
            return ExitCodes.OK;
        }
    }
}

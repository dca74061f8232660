package io.kiln.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.ModelGroupView;
import io.kiln.sdk.ModelVersionView;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
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

/** {@code kiln models ...}: the model registry (docs/registry.md). */
@Command(name = "models", mixinStandardHelpOptions = true,
        description = "Model registry: groups, versions registered from jobs or model folders, approvals.",
        subcommands = {ModelsCommand.CreateGroup.class, ModelsCommand.ListGroups.class, ModelsCommand.Register.class,
                ModelsCommand.Describe.class, ModelsCommand.Approve.class, ModelsCommand.Reject.class,
                CommandLine.HelpCommand.class})
public final class ModelsCommand implements Callable<Integer> {
    enum Output { text, json }

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    /** What every subcommand shares: the API options, and the output writer. */
    abstract static class Sub implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        PrintWriter out() {
            return spec.commandLine().getOut();
        }

        void print(String text) {
            out().print(text);
            out().flush();
        }
    }

    @Command(name = "create-group", mixinStandardHelpOptions = true, description = "Create a model package group.")
    static final class CreateGroup extends Sub {
        @Parameters(paramLabel = "NAME", description = "Letters, digits and hyphens (up to 63).")
        String name;

        @Option(names = {"-d", "--description"}, paramLabel = "TEXT")
        String description;

        @Override
        public Integer call() {
            ModelGroupView g = api.client().createModelGroup(name, description);
            print("Created model package group " + g.name() + "\n");
            return ExitCodes.OK;
        }
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "List model package groups.")
    static final class ListGroups extends Sub {
        @Override
        public Integer call() {
            List<ModelGroupView> groups = api.client().listModelGroups();
            if (groups.isEmpty()) {
                print("No model package groups yet. Create one with: kiln models create-group NAME\n");
                return ExitCodes.OK;
            }
            Table t = new Table("GROUP", "VERSIONS", "LATEST APPROVED", "CREATED", "DESCRIPTION");
            for (ModelGroupView g : groups) {
                t.row(g.name(), g.versionCount(), g.latestApprovedVersion() == null ? "-" : g.latestApprovedVersion(),
                        Fmt.dateTime(g.createdAt()), g.description());
            }
            print(t.render());
            return ExitCodes.OK;
        }
    }

    @Command(name = "register", mixinStandardHelpOptions = true,
            description = "Register a new version (PendingManualApproval) from a completed job or a model folder.")
    static final class Register extends Sub {
        @Parameters(paramLabel = "GROUP", description = "Model package group.")
        String group;

        @ArgGroup(exclusive = true, multiplicity = "1")
        Source source;

        static final class Source {
            @Option(names = "--job", paramLabel = "JOB_ID", required = true,
                    description = "A Completed training job: its model, algorithm, metrics and lineage.")
            String job;

            @Option(names = "--model-uri", paramLabel = "URI", required = true,
                    description = "A model folder trained elsewhere (file: URI or path); needs --framework.")
            String modelUri;
        }

        @Option(names = "--framework", paramLabel = "NAME",
                description = "mlp, cnn, xgboost, knn, kmeans, linear-learner, pca, torchscript or script.")
        String framework;

        @Option(names = {"-d", "--description"}, paramLabel = "TEXT")
        String description;

        @Option(names = "--source-uri", paramLabel = "URI", description = "Where the training code lives.")
        String sourceUri;

        @Option(names = "--metric", paramLabel = "NAME=VALUE", description = "A metric to record (repeatable).")
        Map<String, Double> metrics;

        @Override
        public Integer call() {
            Map<String, Object> body = new LinkedHashMap<>();
            if (source.job != null) {
                body.put("trainingJobId", source.job);
            } else {
                if (framework == null) {
                    throw new UsageException("--model-uri needs --framework (mlp, cnn, xgboost, knn, kmeans, "
                            + "linear-learner, pca, torchscript or script)");
                }
                // A local path is sent as an absolute file: URI: the coordinator does not share our working dir.
                body.put("modelUri", source.modelUri.contains(":") ? source.modelUri
                        : Path.of(source.modelUri).toAbsolutePath().normalize().toUri().toString());
            }
            if (framework != null) {
                body.put("framework", framework);
            }
            if (description != null) {
                body.put("description", description);
            }
            if (sourceUri != null) {
                body.put("sourceUri", sourceUri);
            }
            if (metrics != null) {
                body.put("metrics", metrics);
            }
            ModelVersionView v = api.client().registerModel(group, body);
            print("Registered " + v.group() + " version " + v.version() + " (" + v.status() + ")\n"
                    + "  artifact  " + v.artifactUri() + "\n");
            return ExitCodes.OK;
        }
    }

    @Command(name = "describe", mixinStandardHelpOptions = true,
            description = "Show a group and its versions, or one version, with approval history.")
    static final class Describe extends Sub {
        @Parameters(paramLabel = "GROUP", description = "Model package group.")
        String group;

        @Option(names = "--version", paramLabel = "N", description = "One version in detail.")
        Integer version;

        @Option(names = {"-o", "--output"}, paramLabel = "FORMAT", defaultValue = "text",
                description = "text (default) or json (the API's answer).")
        Output output;

        @Override
        public Integer call() throws JsonProcessingException {
            KilnClient client = api.client();
            String path = KilnClient.modelGroupPath(group) + (version == null ? "" : "/versions/" + version);
            JsonNode raw = client.getJson(path);
            if (output == Output.json) {
                print(KilnClient.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(raw) + "\n");
            } else if (version == null) {
                print(ModelsRender.group(KilnClient.MAPPER.treeToValue(raw, ModelGroupView.class)));
            } else {
                print(ModelsRender.version(KilnClient.MAPPER.treeToValue(raw, ModelVersionView.class)));
            }
            return ExitCodes.OK;
        }
    }

    /** approve / reject: one status change with an optional reason. */
    abstract static class Review extends Sub {
        @Parameters(paramLabel = "GROUP", description = "Model package group.")
        String group;

        @Option(names = "--version", paramLabel = "N", required = true)
        int version;

        @Option(names = "--reason", paramLabel = "TEXT", description = "Why (kept in the approval history).")
        String reason;

        abstract String status();

        @Override
        public Integer call() {
            ModelVersionView v = api.client().setModelApproval(group, version, status(), reason);
            print(String.format(Locale.ROOT, "%s version %d: %s%n", v.group(), v.version(), v.status()));
            return ExitCodes.OK;
        }
    }

    @Command(name = "approve", mixinStandardHelpOptions = true, description = "Approve a version.")
    static final class Approve extends Review {
        @Override
        String status() {
            return "Approved";
        }
    }

    @Command(name = "reject", mixinStandardHelpOptions = true, description = "Reject a version.")
    static final class Reject extends Review {
        @Override
        String status() {
            return "Rejected";
        }
    }
}

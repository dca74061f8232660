package io.kiln.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln tuning list|describe|stop}: hyperparameter tuning jobs (docs/tuning.md). */
@Command(name = "tuning", mixinStandardHelpOptions = true,
        description = "List, describe (with the leaderboard) and stop tuning jobs. Submit one with: kiln tune -f tuning.yaml",
        subcommands = {TuningCommand.ListTuning.class, TuningCommand.Describe.class, TuningCommand.StopTuning.class})
public final class TuningCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "Tuning jobs, newest first, with their best trial.")
    static final class ListTuning implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            List<JsonNode> all = api.client().listTuningJobs();
            if (all.isEmpty()) {
                out.println("No tuning jobs yet. Submit one with: ./kiln tune -f tuning.yaml");
            } else {
                Table t = new Table("ID", "NAME", "STRATEGY", "STATUS", "TRIALS", "BEST", "SUBMITTED");
                for (JsonNode j : all) {
                    JsonNode best = j.path("bestTrial");
                    t.row(j.path("id").asText(), j.path("name").asText(), j.path("strategy").asText(), j.path("status").asText(),
                            trials(j), best.isObject() ? objective(best) + " (" + best.path("trialId").asText() + ")" : "-",
                            Fmt.dateTime(j.path("submittedAt").asText(null)));
                }
                out.print(t.render());
            }
            out.flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "describe", mixinStandardHelpOptions = true, description = "A tuning job and its leaderboard.")
    static final class Describe implements Callable<Integer> {
        enum Output { text, json }

        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        @Parameters(paramLabel = "ID", description = "Tuning job id.")
        String id;

        @Option(names = {"-o", "--output"}, paramLabel = "FORMAT", defaultValue = "text",
                description = "text (default) or json (the API's TuningJobView).")
        Output output;

        @Override
        public Integer call() throws JsonProcessingException {
            PrintWriter out = spec.commandLine().getOut();
            JsonNode view = api.client().getTuningJob(id);
            out.print(output == Output.json ? KilnClient.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(view) + "\n"
                    : render(view));
            out.flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "stop", mixinStandardHelpOptions = true, description = "Stop a tuning job and its running trials.")
    static final class StopTuning implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ApiOptions api;

        @Parameters(paramLabel = "ID", description = "Tuning job id.")
        String id;

        @Override
        public Integer call() {
            JsonNode v = api.client().stopTuningJob(id);
            PrintWriter out = spec.commandLine().getOut();
            out.println("Tuning job " + v.path("id").asText() + " " + v.path("status").asText());
            out.flush();
            return ExitCodes.OK;
        }
    }

    /** The text of {@code kiln tuning describe}: the job's fields, then the leaderboard table. */
    static String render(JsonNode v) {
        StringBuilder sb = new StringBuilder();
        JsonNode o = v.path("objective");
        line(sb, "Tuning job", v.path("id").asText());
        line(sb, "Name", v.path("name").asText());
        line(sb, "Status", v.path("status").asText() + (v.path("endReason").asText().isEmpty() ? "" : " (" + v.path("endReason").asText() + ")"));
        line(sb, "Strategy", v.path("strategy").asText() + ", seed " + v.path("seed").asLong());
        line(sb, "Objective", o.path("type").asText() + " " + o.path("metric").asText());
        line(sb, "Trials", trials(v) + " (max " + v.path("maxTrials").asInt() + ", " + v.path("maxParallelTrials").asInt()
                + " in parallel)" + (v.path("warmStartTrials").asInt() > 0 ? "; warm start: " + v.path("warmStartTrials").asInt() + " trials" : ""));
        line(sb, "Submitted", Fmt.dateTime(v.path("submittedAt").asText(null)) + " by " + v.path("submittedBy").asText());
        if (!v.path("endedAt").isNull() && v.has("endedAt")) {
            line(sb, "Ended", Fmt.dateTime(v.path("endedAt").asText(null)));
        }
        sb.append('\n').append(leaderboard(v));
        return sb.toString();
    }

    static String leaderboard(JsonNode v) {
        Set<String> names = new LinkedHashSet<>();
        v.path("spec").path("parameters").forEach(p -> names.add(p.path("name").asText()));
        String resource = v.path("spec").path("hyperband").path("resource").asText("");
        if (!resource.isEmpty()) {
            names.add(resource);
        }
        List<String> headers = new ArrayList<>(List.of("RANK", "TRIAL", "STATUS", v.path("objective").path("metric").asText().toUpperCase(Locale.ROOT)));
        names.forEach(n -> headers.add(n));
        headers.add("JOB");
        headers.add("NOTE");
        Table t = new Table(headers.toArray(String[]::new));
        for (JsonNode trial : v.path("leaderboard")) {
            List<Object> row = new ArrayList<>();
            row.add(trial.path("rank").isNull() ? "-" : trial.path("rank").asText());
            row.add(trial.path("trialId").asText());
            row.add(trial.path("status").asText());
            row.add(objective(trial));
            for (String n : names) {
                row.add(trial.path("hyperparameters").path(n).asText("-"));
            }
            row.add(Fmt.dash(trial.path("jobId").asText()));
            String note = trial.path("parentTrialId").asText().isEmpty() ? "" : "promoted from " + trial.path("parentTrialId").asText();
            if (!trial.path("reason").asText().isEmpty() && !trial.path("status").asText().equals("Completed")) {
                note = (note.isEmpty() ? "" : note + "; ") + trial.path("reason").asText();
            }
            row.add(note.length() > 80 ? note.substring(0, 77) + "..." : note);
            t.row(row.toArray());
        }
        return t.size() == 0 ? "No trials yet.\n" : t.render();
    }

    static String trials(JsonNode v) {
        JsonNode c = v.path("trialCounts");
        return c.path("completed").asInt() + "/" + c.path("total").asInt() + " done, " + (c.path("running").asInt()
                + c.path("pending").asInt()) + " running" + (c.path("earlyStopped").asInt() > 0 ? ", " + c.path("earlyStopped").asInt()
                + " early-stopped" : "") + (c.path("failed").asInt() > 0 ? ", " + c.path("failed").asInt() + " failed" : "");
    }

    static String objective(JsonNode trial) {
        return trial.path("objective").isNumber() ? String.format(Locale.ROOT, "%.4f", trial.path("objective").asDouble()) : "-";
    }

    private static void line(StringBuilder sb, String field, String value) {
        sb.append(String.format("%-11s %s%n", field + ":", value));
    }
}

package io.kiln.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.tuning.TuningSpecFile;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln tune -f tuning.yaml}: submit a hyperparameter tuning job and follow it to its leaderboard. */
@Command(name = "tune", mixinStandardHelpOptions = true,
        description = {"Submit a hyperparameter tuning job (docs/tuning.md) and follow it until it ends.",
                "Trials are training jobs; the file has the TuningSpec shape with a trainingJob template."},
        footer = {"", "Examples:", "  kiln tune -f deploy/local/tuning-mlp.yaml", "  kiln tune -f tuning.yaml --detach",
                "  kiln tuning describe ID    (the leaderboard)"})
public final class TuneCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = {"-f", "--file"}, required = true, paramLabel = "FILE", description = "Tuning job file (YAML or JSON).")
    Path file;

    @Option(names = "--detach", description = "Print the tuning job id and return without following it.")
    boolean detach;

    @Option(names = "--poll", paramLabel = "SECONDS", defaultValue = "2", description = "How often to check progress (default 2).")
    int pollSeconds;

    @Override
    public Integer call() throws InterruptedException {
        PrintWriter out = spec.commandLine().getOut();
        KilnClient client = api.client();
        JsonNode created = client.createTuningJob(TuningSpecFile.load(file));
        String id = created.path("id").asText();
        out.println("Tuning job " + id + " submitted (" + created.path("strategy").asText() + ", up to "
                + created.path("maxTrials").asInt() + " trials, " + created.path("maxParallelTrials").asInt() + " in parallel)");
        out.flush();
        if (detach) {
            return ExitCodes.OK;
        }
        String last = "";
        JsonNode v = created;
        while (true) {
            v = client.getTuningJob(id);
            String status = v.path("status").asText();
            JsonNode best = v.path("bestTrial");
            String line = status + ": " + TuningCommand.trials(v)
                    + (best.isObject() ? "; best " + TuningCommand.objective(best) + " (" + best.path("trialId").asText() + ")" : "");
            if (!line.equals(last)) {
                out.println(line);
                out.flush();
                last = line;
            }
            if (status.equals("Completed") || status.equals("Stopped") || status.equals("Failed")) {
                break;
            }
            Thread.sleep(Duration.ofSeconds(Math.max(1, pollSeconds)).toMillis());
        }
        out.println();
        out.print(TuningCommand.render(v));
        out.flush();
        return v.path("status").asText().equals("Completed") ? ExitCodes.OK : ExitCodes.JOB_FAILED;
    }
}

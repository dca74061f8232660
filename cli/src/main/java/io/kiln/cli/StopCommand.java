package io.kiln.cli;

import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln stop JOB}. */
@Command(name = "stop", mixinStandardHelpOptions = true,
        description = "Stop a job (409 / exit 3 if it is already finished).")
public final class StopCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Parameters(paramLabel = "JOB", description = "Job id.")
    String jobId;

    @Option(names = "--wait", description = "Wait (up to 60 s) until the job is Stopped.")
    boolean await;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        KilnClient client = api.client();
        JobView j = client.stopJob(jobId);
        out.println(j.id() + ": " + j.status());
        out.flush();
        if (await && !j.isFinal()) {
            j = client.awaitFinal(jobId, Duration.ofSeconds(60), Duration.ofMillis(500));
            out.println(j.id() + ": " + j.status());
            out.flush();
        }
        return ExitCodes.OK;
    }
}

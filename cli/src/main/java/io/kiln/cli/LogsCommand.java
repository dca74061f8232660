package io.kiln.cli;

import io.kiln.sdk.LogLine;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln logs [-f] JOB}. */
@Command(name = "logs", mixinStandardHelpOptions = true, description = "Print a job's log lines (all workers).")
public final class LogsCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Parameters(paramLabel = "JOB", description = "Job id.")
    String jobId;

    @Option(names = {"-f", "--follow"}, description = "Keep printing new lines until the job is final.")
    boolean follow;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        api.client().streamLogs(jobId, follow, line -> {
            out.println(format(line));
            out.flush();
        });
        out.flush();
        return ExitCodes.OK;
    }

    static String format(LogLine l) {
        return Fmt.time(l.at()) + " " + String.format("%-5s", Fmt.dash(l.level())) + " "
                + Fmt.dash(l.worker()) + "  " + (l.message() == null ? "" : l.message());
    }
}

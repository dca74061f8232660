package io.kiln.cli;

import io.kiln.sdk.JobView;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code kiln jobs}: the jobs, newest first. */
@Command(name = "jobs", mixinStandardHelpOptions = true, description = "List training jobs, newest first.")
public final class JobsCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Option(names = {"-n", "--limit"}, paramLabel = "N", description = "Show at most N jobs (default: all).")
    Integer limit;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        List<JobView> jobs = api.client().listJobs();
        if (jobs.isEmpty()) {
            out.println("No jobs yet. Submit one with: ./kiln train -f job.yaml  (or try ./kiln demo)");
            out.flush();
            return ExitCodes.OK;
        }
        out.print(render(limit == null ? jobs : jobs.subList(0, Math.min(limit, jobs.size()))));
        out.flush();
        return ExitCodes.OK;
    }

    static String render(List<JobView> jobs) {
        Table t = new Table("ID", "NAME", "STATUS", "PROGRESS", "ACCURACY", "SUBMITTED");
        for (JobView j : jobs) {
            t.row(j.id(), j.name(), j.status(), Fmt.progress(j.progress()), Fmt.number(j.testAccuracy(), 4),
                    Fmt.dateTime(j.submittedAt()));
        }
        return t.render();
    }
}

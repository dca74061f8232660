package io.kiln.cli;

import io.kiln.sdk.KilnClient;
import io.kiln.sdk.WorkerView;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code kiln cluster}: the workers. */
@Command(name = "cluster", mixinStandardHelpOptions = true, description = "List the cluster's workers.")
public final class ClusterCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ApiOptions api;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        KilnClient client = api.client();
        List<WorkerView> workers = client.cluster();
        out.println("Coordinator: " + client.apiUrl() + "  (" + workers.size() + " worker" + (workers.size() == 1 ? "" : "s") + ")");
        if (!workers.isEmpty()) {
            out.print(render(workers));
        }
        out.flush();
        return ExitCodes.OK;
    }

    static String render(List<WorkerView> workers) {
        Table t = new Table("WORKER", "ADDRESS", "CPUS FREE/TOTAL", "GPUS FREE/TOTAL", "MEMORY MB", "TASKS");
        for (WorkerView w : workers) {
            t.row(w.id(), w.address(), w.freeCpus() + "/" + w.cpus(), w.freeGpus() + "/" + w.gpus(), w.memoryMb(),
                    w.runningTasks().isEmpty() ? "-" : String.join(",", w.runningTasks()));
        }
        return t.render();
    }
}

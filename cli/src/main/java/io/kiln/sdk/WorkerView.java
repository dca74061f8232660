package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.List;

/** A worker as {@code GET /api/v1/cluster} lists it. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record WorkerView(String id, String address, int cpus, long memoryMb, int gpus, int freeCpus,
                         int freeGpus, List<String> runningTasks) {

    public List<String> runningTasks() {
        return runningTasks == null ? List.of() : runningTasks;
    }
}

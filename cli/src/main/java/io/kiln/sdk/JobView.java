package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;

/**
 * A job as the REST API shows it (docs/api.md, "JobView JSON"). {@code spec} stays a JSON tree;
 * {@code history} is empty in a list answer.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record JobView(String id, String name, String status, JsonNode spec, String submittedAt,
                      String startedAt, String endedAt, List<String> workers, Progress progress,
                      Map<String, Object> metrics, String modelUri, String failureReason,
                      List<HistoryEntry> history, Map<String, String> outputs) {

    /** A processing job's outputs, name to URI (empty for other jobs and until it completes). */
    public Map<String, String> outputs() {
        return outputs == null ? Map.of() : outputs;
    }

    public List<String> workers() {
        return workers == null ? List.of() : workers;
    }

    public Map<String, Object> metrics() {
        return metrics == null ? Map.of() : metrics;
    }

    public List<HistoryEntry> history() {
        return history == null ? List.of() : history;
    }

    /** One of {@link #metrics()} as a number, or null. */
    public Double metric(String name) {
        return Metrics.get(metrics, name);
    }

    /** {@code metrics.test_accuracy}, or null. */
    public Double testAccuracy() {
        return metric("test_accuracy");
    }

    /** Completed, Failed or Stopped. */
    public boolean isFinal() {
        return JobStatus.isFinal(status);
    }
}

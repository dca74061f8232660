package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.Map;

/** The data of a metrics-stream {@code status} event. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record StatusEvent(String status, Map<String, Object> metrics, String modelUri, String failureReason) {

    /** One of {@link #metrics()} as a number, or null. */
    public Double metric(String name) {
        return Metrics.get(metrics, name);
    }

    public boolean isFinal() {
        return JobStatus.isFinal(status);
    }
}

package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.Map;

/** The {@code progress} object of a JobView, also the data of a metrics-stream {@code progress} event. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Progress(long step, long totalSteps, int epoch, int totalEpochs, double loss,
                       double samplesPerSec, double computeMsPerStep, double commMsPerStep,
                       Map<String, Object> metrics) {

    /** One of {@link #metrics()} as a number, or null. */
    public Double metric(String name) {
        return Metrics.get(metrics, name);
    }

    /** step / totalSteps in [0, 1]; 0 while the total is unknown. */
    public double fraction() {
        return totalSteps <= 0 ? 0.0 : Math.min(1.0, (double) step / totalSteps);
    }
}

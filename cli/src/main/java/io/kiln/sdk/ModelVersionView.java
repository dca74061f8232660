package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;

/**
 * One version of a model package group (docs/registry.md). {@code signature} and {@code lineage}
 * stay JSON trees; {@code approvalHistory} (oldest first, the registration first) is empty in a
 * list answer.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record ModelVersionView(String group, int version, String status, String artifactUri, String framework,
                               String description, JsonNode signature, Map<String, Double> metrics, JsonNode lineage,
                               String registeredBy, String registeredAt, String statusChangedAt,
                               List<ApprovalChange> approvalHistory) {

    /** One change of a version's approval status: when, to what, by whom and why. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ApprovalChange(String at, String status, String by, String reason) {
    }

    public Map<String, Double> metrics() {
        return metrics == null ? Map.of() : metrics;
    }

    public List<ApprovalChange> approvalHistory() {
        return approvalHistory == null ? List.of() : approvalHistory;
    }
}

package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.List;

/**
 * A model package group as the REST API shows it (docs/registry.md). {@code versions} is empty in
 * a list answer; {@code latestApprovedVersion} is null when no version is Approved.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record ModelGroupView(String name, String description, String createdBy, String createdAt, int versionCount,
                             Integer latestApprovedVersion, List<ModelVersionView> versions) {

    public List<ModelVersionView> versions() {
        return versions == null ? List.of() : versions;
    }
}

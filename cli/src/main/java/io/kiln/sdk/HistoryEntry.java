package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;

/** One entry of a job's history: {@code {"at": ..., "event": "Submitted", "detail": "by local-admin"}}. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record HistoryEntry(String at, String event, String detail) {
}

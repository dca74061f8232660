package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;

/** The data of a logs-stream {@code log} event. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record LogLine(String at, String level, String worker, String message) {
}

package io.kiln.sdk;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;

/**
 * One server-sent event: its {@code event:} name (default {@code message}), its {@code data:}
 * (lines joined with {@code \n}) and its optional {@code id:}.
 */
public record SseEvent(String event, String data, String id) {

    /** The data parsed as JSON. */
    public JsonNode json() {
        try {
            return KilnClient.MAPPER.readTree(data);
        } catch (JsonProcessingException e) {
            throw new KilnException("event '" + event + "' has data that is not JSON: " + data, e);
        }
    }

    /** The data bound to a type, e.g. {@code as(Progress.class)} for a {@code progress} event. */
    public <T> T as(Class<T> type) {
        try {
            return KilnClient.MAPPER.readValue(data, type);
        } catch (JsonProcessingException e) {
            throw new KilnException("event '" + event + "' has data that does not fit "
                    + type.getSimpleName() + ": " + data, e);
        }
    }
}

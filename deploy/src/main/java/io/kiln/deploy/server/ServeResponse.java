package io.kiln.deploy.server;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * One HTTP response as the routing code builds it, whatever transport writes it: status, media type,
 * body and extra headers (the transport adds Content-Length, Date and Connection).
 */
record ServeResponse(int status, String contentType, byte[] body, Map<String, String> headers) {
  static final String JSON = "application/json";
  static final String CSV = "text/csv; charset=UTF-8";

  static ServeResponse of(int status, String contentType, byte[] body) {
    return new ServeResponse(status, contentType, body, Map.of());
  }

  static ServeResponse json(int status, byte[] body) {
    return of(status, JSON, body);
  }

  static ServeResponse json(int status, String body) {
    return json(status, body.getBytes(StandardCharsets.UTF_8));
  }

  /** {@code {"error": message}} with {@code status}. */
  static ServeResponse error(int status, String message) {
    return json(status, Payloads.error(message));
  }

  /** This response with one more header (responses carry at most a few, so a copy is fine). */
  ServeResponse withHeader(String name, String value) {
    if (headers.isEmpty()) return new ServeResponse(status, contentType, body, Map.of(name, value));
    var h = new java.util.LinkedHashMap<>(headers);
    h.put(name, value);
    return new ServeResponse(status, contentType, body, Map.copyOf(h));
  }
}

package io.kiln.deploy.server;

import java.util.function.Function;

/**
 * One HTTP request as the routing code ({@link Router}, {@link V2}) sees it, whatever transport read
 * it: no HTTP library's types. {@code path} is the raw (still percent-encoded) path without the
 * query; {@code headers} looks a header up by name, case-insensitively, null when absent.
 */
record ServeRequest(String method, String path, Function<String, String> headers, byte[] body) {
  static final String OCTETS = "application/octet-stream";

  /** The header's value, or null. */
  String header(String name) {
    return headers.apply(name);
  }

  /** The body's media type as sent (e.g. {@code text/csv; charset=utf-8}); {@code application/octet-stream} when unsaid. */
  String contentType() {
    String t = header("Content-Type");
    return t == null || t.isEmpty() ? OCTETS : t;
  }

  boolean isGet() {
    return method.equals("GET");
  }

  boolean isPost() {
    return method.equals("POST");
  }
}

package io.kiln.coordinator.endpoints;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A create or update request as the user wrote it (docs/api.md "Endpoints"): variants name a
 * model folder, or a registry group with a version or {@code "latestApproved"}. Parsing checks
 * everything that needs no registry; {@link Endpoints} then resolves the versions.
 */
public record EndpointRequest(String name, List<Variant> variants, long idleTimeoutMs, int maxConcurrency,
                              String captureUri, double capturePercent, long memoryMb) {

  /**
   * One production variant; exactly one of modelUri / modelGroup; version 0 = latest approved.
   * {@code multiModel}: modelUri is a prefix and every model under it is served, named per request.
   */
  public record Variant(String name, String modelUri, String modelGroup, int version, double weight, int instances,
                        int maxInstances, boolean multiModel) {
    public Variant(String name, String modelUri, String modelGroup, int version, double weight, int instances, int maxInstances) {
      this(name, modelUri, modelGroup, version, weight, instances, maxInstances, false);
    }
  }

  public static final Pattern NAME = Pattern.compile("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}");
  private static final Set<String> FIELDS = Set.of("name", "variants", "idleTimeout", "maxConcurrency", "dataCapture",
      "memoryMb");
  private static final Set<String> VARIANT_FIELDS = Set.of("name", "modelUri", "modelGroup", "version", "weight",
      "instances", "maxInstances", "multiModel");

  /** Parses a body; {@code pathName}, when given (PUT), is the name and the body's must agree or be absent. */
  public static EndpointRequest parse(JsonNode b, String pathName) {
    if (!b.isObject()) throw EndpointException.invalid("the body must be a JSON object");
    only(b, FIELDS, "");
    String name = pathName != null ? pathName : b.path("name").asText("");
    if (pathName != null && b.has("name") && !b.get("name").asText().equals(pathName)) {
      throw EndpointException.invalid("the body names endpoint '" + b.get("name").asText() + "' but the path '" + pathName + "'");
    }
    if (!NAME.matcher(name).matches()) {
      throw EndpointException.invalid("name '" + name + "' is invalid: 1-63 letters, digits and '-', starting with a letter or digit");
    }
    JsonNode vs = b.path("variants");
    if (!vs.isArray() || vs.isEmpty()) throw EndpointException.invalid("variants is required: a non-empty array");
    List<Variant> variants = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    double total = 0;
    for (int i = 0; i < vs.size(); i++) {
      Variant v = variant(vs.get(i), i, vs.size());
      if (!seen.add(v.name())) throw EndpointException.invalid("variants[" + i + "]: the name '" + v.name() + "' is used twice");
      total += v.weight();
      variants.add(v);
    }
    if (total <= 0) throw EndpointException.invalid("the variants' weights sum to 0: give at least one a weight > 0");
    long idle = b.has("idleTimeout") ? durationMs(b.get("idleTimeout"), "idleTimeout") : 0;
    int maxConcurrency = b.has("maxConcurrency") ? positiveInt(b.get("maxConcurrency"), "maxConcurrency") : 0;
    String captureUri = "";
    double percent = 0;
    if (b.has("dataCapture")) {
      JsonNode d = b.get("dataCapture");
      only(d, Set.of("uri", "percent"), "dataCapture.");
      captureUri = uri(d.path("uri").asText(""), "dataCapture.uri");
      percent = d.path("percent").asDouble(100);
      if (percent <= 0 || percent > 100) throw EndpointException.invalid("dataCapture.percent must be in (0, 100]");
    }
    long memoryMb = 0;
    if (b.has("memoryMb")) {
      JsonNode m = b.get("memoryMb");
      if (!m.canConvertToLong() || m.asLong() < 128) throw EndpointException.invalid("memoryMb must be a whole number >= 128, not " + m);
      memoryMb = m.asLong();
    }
    return new EndpointRequest(name, List.copyOf(variants), idle, maxConcurrency, captureUri, percent, memoryMb);
  }

  private static Variant variant(JsonNode v, int i, int count) {
    String at = "variants[" + i + "].";
    if (!v.isObject()) throw EndpointException.invalid("variants[" + i + "] must be an object");
    only(v, VARIANT_FIELDS, at);
    String name = v.path("name").asText(count == 1 ? "primary" : "");
    if (!NAME.matcher(name).matches()) throw EndpointException.invalid(at + "name '" + name + "' is invalid (1-63 letters, digits, '-')");
    boolean hasUri = v.hasNonNull("modelUri");
    boolean hasGroup = v.hasNonNull("modelGroup");
    if (hasUri == hasGroup) throw EndpointException.invalid(at + "give exactly one of modelUri or modelGroup");
    int version = 0;
    if (hasGroup) {
      JsonNode ver = v.path("version");
      if (ver.isMissingNode() || ver.isNull() || "latestApproved".equals(ver.asText())) {
        version = 0;
      } else if (ver.canConvertToInt() && ver.asInt() >= 1 || ver.isTextual() && ver.asText().matches("[1-9][0-9]*")) {
        version = ver.asInt();
      } else {
        throw EndpointException.invalid(at + "version must be a number >= 1 or \"latestApproved\", not " + ver);
      }
    } else if (v.has("version")) {
      throw EndpointException.invalid(at + "version goes with modelGroup, not modelUri");
    }
    double weight = v.has("weight") ? v.get("weight").asDouble(-1) : 1;
    if (!(weight >= 0)) throw EndpointException.invalid(at + "weight must be a number >= 0");
    int instances = v.has("instances") ? positiveInt(v.get("instances"), at + "instances") : 1;
    int max = v.has("maxInstances") ? positiveInt(v.get("maxInstances"), at + "maxInstances") : instances;
    if (max < instances) throw EndpointException.invalid(at + "maxInstances (" + max + ") is below instances (" + instances + ")");
    if (max > 16) throw EndpointException.invalid(at + "at most 16 instances per variant on one coordinator");
    boolean multi = v.path("multiModel").asBoolean(false);
    if (v.has("multiModel") && !v.get("multiModel").isBoolean()) throw EndpointException.invalid(at + "multiModel must be true or false");
    if (multi && hasGroup) {
      throw EndpointException.invalid(at + "multiModel serves every model under a modelUri prefix; it does not go with modelGroup");
    }
    return new Variant(name, hasUri ? uri(v.get("modelUri").asText(), at + "modelUri") : "",
        hasGroup ? v.get("modelGroup").asText() : "", version, weight, instances, max, multi);
  }

  private static String uri(String s, String field) {
    if (s.isBlank()) throw EndpointException.invalid(field + " is required");
    if (s.startsWith("/")) return Path.of(s).toUri().toString();
    try {
      URI u = URI.create(s);
      if (u.getScheme() == null) throw EndpointException.invalid(field + " '" + s + "' must be absolute (file:/..., s3://... or /path)");
      return u.toString();
    } catch (IllegalArgumentException e) {
      throw EndpointException.invalid(field + " '" + s + "' is not a URI: " + e.getMessage());
    }
  }

  private static int positiveInt(JsonNode n, String field) {
    if (!n.canConvertToInt() || n.asInt() < 1) throw EndpointException.invalid(field + " must be a whole number >= 1, not " + n);
    return n.asInt();
  }

  /** {@code "60s"}, {@code "500ms"}, {@code "5m"} or a number of seconds. */
  static long durationMs(JsonNode n, String field) {
    String s = n.asText();
    try {
      long ms;
      if (n.isNumber()) ms = (long) (n.asDouble() * 1000);
      else if (s.endsWith("ms")) ms = Long.parseLong(s.substring(0, s.length() - 2));
      else if (s.endsWith("s")) ms = (long) (Double.parseDouble(s.substring(0, s.length() - 1)) * 1000);
      else if (s.endsWith("m")) ms = Long.parseLong(s.substring(0, s.length() - 1)) * 60_000;
      else ms = (long) (Double.parseDouble(s) * 1000);
      if (ms <= 0) throw new NumberFormatException();
      return ms;
    } catch (NumberFormatException e) {
      throw EndpointException.invalid(field + " '" + s + "' is not a positive duration (e.g. 60s, 500ms, 5m)");
    }
  }

  private static void only(JsonNode b, Set<String> fields, String at) {
    if (!b.isObject()) throw EndpointException.invalid(at + " must be an object");
    b.fieldNames().forEachRemaining(f -> {
      if (!fields.contains(f)) {
        throw EndpointException.invalid("unknown field '" + at + f + "' (fields: " + String.join(", ", fields.stream().sorted().toList()) + ")");
      }
    });
  }
}

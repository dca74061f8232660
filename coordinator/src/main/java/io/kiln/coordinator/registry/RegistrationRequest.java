package io.kiln.coordinator.registry;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.protocol.proto.ModelSignature;
import io.kiln.protocol.proto.ModelTensorSpec;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A request to register a version (the body of {@code POST .../versions}): either from a completed
 * training job ({@code trainingJobId}) or from a model folder trained elsewhere ({@code modelUri}
 * with {@code framework}). Given fields override what the job or the folder say.
 */
public record RegistrationRequest(String trainingJobId, String modelUri, String framework, String description,
                                  ModelSignature signature, Map<String, Double> metrics, String sourceUri) {
  private static final Set<String> FIELDS = Set.of("trainingJobId", "modelUri", "framework", "description",
      "signature", "metrics", "sourceUri");
  /** The Open Inference Protocol's tensor datatypes. */
  static final List<String> DATATYPES = List.of("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
      "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES");

  public static RegistrationRequest fromJob(String jobId) {
    return new RegistrationRequest(jobId, "", "", "", null, Map.of(), "");
  }

  public static RegistrationRequest fromArtifact(String modelUri, String framework) {
    return new RegistrationRequest("", modelUri, framework, "", null, Map.of(), "");
  }

  /** Parses and checks a request body; every problem is named in the one error. */
  public static RegistrationRequest parse(JsonNode body) {
    List<String> problems = new ArrayList<>();
    if (body == null || !body.isObject()) throw RegistryException.invalid("the body must be a JSON object");
    body.fieldNames().forEachRemaining(f -> {
      if (!FIELDS.contains(f)) problems.add("unknown field '" + f + "' (fields: " + String.join(", ", FIELDS.stream().sorted().toList()) + ")");
    });
    String job = text(body, "trainingJobId", problems);
    String uri = text(body, "modelUri", problems);
    String framework = text(body, "framework", problems);
    if (job.isEmpty() && uri.isEmpty()) problems.add("give trainingJobId (a completed Kiln job) or modelUri and framework");
    if (!job.isEmpty() && !uri.isEmpty()) problems.add("give trainingJobId or modelUri, not both");
    if (job.isEmpty() && !uri.isEmpty() && framework.isEmpty()) {
      problems.add("framework is required with modelUri (one of " + String.join(", ", ModelArtifactCheck.FRAMEWORKS) + ")");
    }
    if (!framework.isEmpty() && !ModelArtifactCheck.FRAMEWORKS.contains(framework)) {
      problems.add("unknown framework '" + framework + "': use one of " + String.join(", ", ModelArtifactCheck.FRAMEWORKS));
    }
    ModelSignature signature = body.has("signature") ? signature(body.get("signature"), problems) : null;
    Map<String, Double> metrics = new LinkedHashMap<>();
    JsonNode m = body.path("metrics");
    if (!m.isMissingNode() && !m.isObject()) problems.add("metrics must be an object of name -> number");
    for (Iterator<Map.Entry<String, JsonNode>> it = m.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getValue().isNumber()) metrics.put(e.getKey(), e.getValue().asDouble());
      else problems.add("metric '" + e.getKey() + "' is not a number: " + e.getValue());
    }
    String description = text(body, "description", problems);
    String source = text(body, "sourceUri", problems);
    if (!problems.isEmpty()) throw RegistryException.invalid("invalid model version: " + String.join("; ", problems));
    return new RegistrationRequest(job, uri, framework, description, signature, Map.copyOf(metrics), source);
  }

  private static ModelSignature signature(JsonNode n, List<String> problems) {
    if (!n.isObject()) {
      problems.add("signature must be an object {\"inputs\": [...], \"outputs\": [...]}");
      return null;
    }
    ModelSignature.Builder b = ModelSignature.newBuilder();
    for (String side : List.of("inputs", "outputs")) {
      JsonNode arr = n.path(side);
      if (arr.isMissingNode()) continue;
      if (!arr.isArray()) {
        problems.add("signature." + side + " must be an array");
        continue;
      }
      for (int i = 0; i < arr.size(); i++) {
        JsonNode t = arr.get(i);
        String where = "signature." + side + "[" + i + "]";
        ModelTensorSpec.Builder spec = ModelTensorSpec.newBuilder().setName(t.path("name").asText(""))
            .setDatatype(t.path("datatype").asText(""));
        if (spec.getName().isBlank()) problems.add(where + ": name is required");
        if (!DATATYPES.contains(spec.getDatatype())) {
          problems.add(where + ": datatype '" + spec.getDatatype() + "' is not one of " + String.join(", ", DATATYPES));
        }
        for (JsonNode d : t.path("shape")) {
          if (d.isIntegralNumber() && d.asLong() >= -1) spec.addShape(d.asLong());
          else problems.add(where + ": shape dimension " + d + " is not an integer >= -1 (-1 = variable)");
        }
        if (side.equals("inputs")) b.addInputs(spec); else b.addOutputs(spec);
      }
    }
    return b.build();
  }

  private static String text(JsonNode body, String field, List<String> problems) {
    JsonNode n = body.path(field);
    if (n.isMissingNode() || n.isNull()) return "";
    if (!n.isTextual()) {
      problems.add(field + " must be a string");
      return "";
    }
    return n.asText().trim();
  }
}

package io.kiln.coordinator.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.protocol.proto.JobSpec;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Validation of processing jobs (algorithm {@code processing}, docs/processing.md), on top of script
 * mode's checks of the entry point and source: the outputs ({@code kiln_processing_outputs}), the
 * arguments ({@code kiln_processing_arguments}), environment variable names (the other
 * hyperparameters) and one worker.
 */
final class ProcessingSpecs {
  static final String OUTPUTS = "kiln_processing_outputs";
  static final String ARGUMENTS = "kiln_processing_arguments";
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
  private static final Pattern ENV = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
  private static final ObjectMapper JSON = new ObjectMapper();

  private ProcessingSpecs() {}

  static void problems(JobSpec spec, List<String> d) {
    Map<String, String> hp = spec.getHyperparametersMap();
    if (spec.getResources().getWorkers() > 1 || spec.getResources().getMaxWorkers() > 1) {
      d.add("resources.workers: processing jobs run on one worker");
    }
    for (String name : spec.getChannelsMap().keySet()) {
      if (!NAME.matcher(name).matches()) d.add("channels." + name + ": an input name is letters, digits, '.', '_' or '-'");
    }
    String outputs = JobSpecs.unquoteJson(hp.getOrDefault(OUTPUTS, "")).trim();
    if (!outputs.isEmpty()) {
      JsonNode o = read(outputs, OUTPUTS, d);
      if (o != null && !o.isObject()) d.add("hyperparameters." + OUTPUTS + ": must be a JSON object of name: destination");
      if (o != null && o.isObject()) {
        for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
          Map.Entry<String, JsonNode> e = it.next();
          if (!NAME.matcher(e.getKey()).matches()) {
            d.add("hyperparameters." + OUTPUTS + ": output name '" + e.getKey() + "' must be letters, digits, '.', '_' or '-'");
          }
          String dest = e.getValue().isTextual() ? e.getValue().asText().trim() : null;
          if (dest == null) d.add("hyperparameters." + OUTPUTS + ": the destination of " + e.getKey() + " must be a string");
          else if (!dest.isEmpty() && JobSpecs.uriProblem(dest) != null) {
            d.add("hyperparameters." + OUTPUTS + ": output " + e.getKey() + ": " + JobSpecs.uriProblem(dest));
          }
        }
      }
    }
    String args = JobSpecs.unquoteJson(hp.getOrDefault(ARGUMENTS, "")).trim();
    if (!args.isEmpty()) {
      JsonNode a = read(args, ARGUMENTS, d);
      if (a != null && (!a.isArray() || !java.util.stream.StreamSupport.stream(a.spliterator(), false)
          .allMatch(JsonNode::isTextual))) {
        d.add("hyperparameters." + ARGUMENTS + ": must be a JSON list of strings");
      }
    }
    for (String k : hp.keySet()) {
      if (k.startsWith("sagemaker_") || k.startsWith("kiln_")) continue;
      if (!ENV.matcher(k).matches()) {
        d.add("hyperparameters." + k + ": becomes an environment variable, so letters, digits and '_' only");
      }
    }
  }

  private static JsonNode read(String json, String key, List<String> d) {
    try {
      return JSON.readTree(json);
    } catch (JsonProcessingException e) {
      d.add("hyperparameters." + key + ": not valid JSON (" + e.getOriginalMessage() + ")");
      return null;
    }
  }
}

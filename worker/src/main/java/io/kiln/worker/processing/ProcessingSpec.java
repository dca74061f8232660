package io.kiln.worker.processing;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import io.kiln.worker.script.ScriptSpec;
import io.kiln.worker.script.UserCode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * A processing job's settings (docs/processing.md), in the spec's reserved hyperparameters next to
 * script mode's ({@code sagemaker_program}, {@code sagemaker_submit_directory}, ...):
 * {@code kiln_processing_outputs} (JSON object: output name to destination URI, {@code ""} for
 * {@code <job folder>/output/<name>/}) and {@code kiln_processing_arguments} (JSON list of the
 * entry point's arguments). Inputs are the spec's channels; the other hyperparameters become the
 * process's environment (SageMaker Processing's {@code Environment}).
 */
public record ProcessingSpec(ScriptSpec script, SortedMap<String, String> outputs, List<String> arguments) {
  public static final String ALGORITHM = "processing";
  public static final String OUTPUTS = "kiln_processing_outputs";
  public static final String ARGUMENTS = "kiln_processing_arguments";
  static final Pattern ENV_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

  /** Reads and checks the settings; throws {@link IllegalArgumentException} naming the bad one. */
  public static ProcessingSpec fromSpec(io.kiln.protocol.proto.JobSpec spec) {
    ScriptSpec script = ScriptSpec.fromSpec(spec);
    Map<String, String> hp = spec.getHyperparametersMap();
    SortedMap<String, String> outputs = new TreeMap<>();
    String o = hp.getOrDefault(OUTPUTS, "").trim();
    if (!o.isEmpty()) {
      JsonElement e = parse(o, OUTPUTS);
      if (!e.isJsonObject()) throw new IllegalArgumentException("hyperparameters." + OUTPUTS + " must be a JSON object");
      for (Map.Entry<String, JsonElement> en : e.getAsJsonObject().entrySet()) {
        if (!UserCode.CHANNEL_NAME.matcher(en.getKey()).matches()) {
          throw new IllegalArgumentException("output name '" + en.getKey() + "' must be letters, digits, '.', '_' or '-'");
        }
        if (!en.getValue().isJsonPrimitive()) {
          throw new IllegalArgumentException("output " + en.getKey() + ": the destination must be a string");
        }
        outputs.put(en.getKey(), en.getValue().getAsString().trim());
      }
    }
    List<String> args = new ArrayList<>();
    String a = hp.getOrDefault(ARGUMENTS, "").trim();
    if (!a.isEmpty()) {
      JsonElement e = parse(a, ARGUMENTS);
      if (!e.isJsonArray()) throw new IllegalArgumentException("hyperparameters." + ARGUMENTS + " must be a JSON list");
      for (JsonElement x : (JsonArray) e) {
        if (!x.isJsonPrimitive()) throw new IllegalArgumentException("hyperparameters." + ARGUMENTS + ": only strings");
        args.add(x.getAsString());
      }
    }
    for (String k : script.hyperparameters().keySet()) {
      if (!ENV_NAME.matcher(k).matches()) {
        throw new IllegalArgumentException("environment variable '" + k + "' (a hyperparameter) must be letters, digits "
            + "and '_', not starting with a digit");
      }
    }
    return new ProcessingSpec(script, outputs, args);
  }

  private static JsonElement parse(String json, String key) {
    try {
      return JsonParser.parseString(json);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("hyperparameters." + key + ": not valid JSON (" + e.getMessage() + ")");
    }
  }

}

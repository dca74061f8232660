package io.kiln.worker.script;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.OptionalDouble;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * A metric a script prints, as SageMaker's {@code MetricDefinitions}: a name and a regular
 * expression applied to every line of the script's output. The value is the expression's first
 * group (the whole match when it has none) read as a number.
 */
public record MetricDefinition(String name, Pattern regex) {

  /** The value in {@code line}, or empty when the expression does not match or the match is not a number. */
  public OptionalDouble find(String line) {
    Matcher m = regex.matcher(line);
    if (!m.find()) return OptionalDouble.empty();
    String v = m.groupCount() >= 1 ? m.group(1) : m.group();
    if (v == null) return OptionalDouble.empty();
    try {
      double d = Double.parseDouble(v.trim());
      return Double.isFinite(d) ? OptionalDouble.of(d) : OptionalDouble.empty();
    } catch (NumberFormatException e) {
      return OptionalDouble.empty();
    }
  }

  /**
   * Parses the JSON list that {@code kiln_metric_definitions} holds: {@code [{"Name": "loss",
   * "Regex": "loss: ([0-9.]+)"}, ...]} (lowercase {@code name}/{@code regex} accepted). Blank = none.
   *
   * @throws IllegalArgumentException naming the problem (not JSON, no name, bad regex, duplicate name)
   */
  public static List<MetricDefinition> parseList(String json) {
    if (json == null || json.isBlank()) return List.of();
    JsonElement root;
    try {
      root = JsonParser.parseString(json);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("metric definitions are not valid JSON: " + e.getMessage());
    }
    if (!root.isJsonArray()) {
      throw new IllegalArgumentException("metric definitions must be a JSON list of {\"Name\": ..., \"Regex\": ...}");
    }
    JsonArray list = root.getAsJsonArray();
    List<MetricDefinition> out = new ArrayList<>();
    Set<String> names = new LinkedHashSet<>();
    for (int i = 0; i < list.size(); i++) {
      if (!list.get(i).isJsonObject()) {
        throw new IllegalArgumentException("metric definition " + (i + 1) + " must be an object {\"Name\": ..., \"Regex\": ...}");
      }
      JsonObject o = list.get(i).getAsJsonObject();
      String name = text(o, "Name", "name");
      String regex = text(o, "Regex", "regex");
      if (name == null || name.isBlank()) throw new IllegalArgumentException("metric definition " + (i + 1) + " has no Name");
      if (regex == null || regex.isEmpty()) throw new IllegalArgumentException("metric '" + name + "' has no Regex");
      if (!names.add(name)) throw new IllegalArgumentException("metric '" + name + "' is defined twice");
      try {
        out.add(new MetricDefinition(name, Pattern.compile(regex)));
      } catch (PatternSyntaxException e) {
        throw new IllegalArgumentException("metric '" + name + "': invalid regular expression: "
            + e.getDescription() + " near index " + e.getIndex() + " of " + regex);
      }
    }
    return List.copyOf(out);
  }

  private static String text(JsonObject o, String a, String b) {
    JsonElement e = o.has(a) ? o.get(a) : o.get(b);
    if (e == null || e.isJsonNull()) return null;
    return e.isJsonPrimitive() ? e.getAsString() : e.toString();
  }
}

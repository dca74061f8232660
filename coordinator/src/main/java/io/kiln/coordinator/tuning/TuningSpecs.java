package io.kiln.coordinator.tuning;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.kiln.coordinator.api.InvalidSpecException;
import io.kiln.coordinator.api.JobSpecs;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.ParameterRangeSpec;
import io.kiln.protocol.proto.TuningSpec;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Parses and validates tuning job specs (the protobuf JSON mapping of {@link TuningSpec}), filling
 * in defaults. Every problem is reported at once, one detail per field. The training job template
 * is checked as {@link JobSpecs} checks a job, once with every range at its minimum and once at its
 * maximum (and with each category), so that an out-of-range value fails here, not in a trial.
 */
public final class TuningSpecs {
  static final int MAX_TRIALS = 10_000;
  private static final Pattern NAME = Pattern.compile("[a-z0-9]([a-z0-9-]{0,53}[a-z0-9])?");
  private static final Set<String> TYPES = Set.of("continuous", "integer", "categorical");
  private static final ObjectMapper JSON = new ObjectMapper();

  private TuningSpecs() {}

  public static TuningSpec parse(String json) throws InvalidSpecException {
    JsonNode tree;
    try {
      tree = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new InvalidSpecException("malformed JSON", List.of(e.getOriginalMessage()));
    }
    if (tree == null || !tree.isObject()) throw new InvalidSpecException("the tuning job spec must be a JSON object", List.of());
    List<String> d = new ArrayList<>();
    JsonNode job = tree.get("trainingJob");
    if (job != null && job.isObject()) {
      stringify((ObjectNode) job, "hyperparameters", d);
      stringify((ObjectNode) job, "channels", d);
    }
    JsonNode params = tree.get("parameters");
    if (params != null && params.isArray()) {
      for (JsonNode p : params) {
        if (p.isObject() && p.get("values") != null && p.get("values").isArray()) {
          var arr = JSON.createArrayNode();
          p.get("values").forEach(v -> arr.add(v.asText()));
          ((ObjectNode) p).set("values", arr);
        }
      }
    }
    if (!d.isEmpty()) throw new InvalidSpecException("invalid tuning job spec", d);
    TuningSpec.Builder b = TuningSpec.newBuilder();
    try {
      JsonFormat.parser().merge(tree.toString(), b);
    } catch (InvalidProtocolBufferException e) {
      String m = e.getMessage() == null ? "unreadable spec" : e.getMessage().replace("kiln.v1.", "");
      throw new InvalidSpecException("invalid tuning job spec", List.of(m));
    }
    return validate(b.build());
  }

  /** Checks a spec and returns it with defaults filled in (seed 0 stays 0: the manager picks one). */
  public static TuningSpec validate(TuningSpec spec) throws InvalidSpecException {
    List<String> d = new ArrayList<>();
    if (spec.getName().isEmpty()) d.add("name: required");
    else if (!NAME.matcher(spec.getName()).matches()) {
      d.add("name: '" + spec.getName() + "' must be 1-55 characters of a-z, 0-9 and '-', starting and ending with a letter or digit");
    }
    String strategy = spec.getStrategy().toLowerCase(Locale.ROOT);
    if (strategy.isEmpty()) d.add("strategy: required (one of " + String.join(", ", Strategies.NAMES) + ")");
    else if (!Strategies.NAMES.contains(strategy)) {
      d.add("strategy: unknown '" + spec.getStrategy() + "' (known: " + String.join(", ", Strategies.NAMES) + ")");
    }
    if (spec.getObjective().getMetric().isEmpty()) d.add("objective.metric: required, e.g. test_accuracy");
    String type = spec.getObjective().getType();
    if (!type.equalsIgnoreCase("Minimize") && !type.equalsIgnoreCase("Maximize")) {
      d.add("objective.type: '" + type + "' must be Minimize or Maximize");
    }
    boolean hyperband = strategy.equals("hyperband");
    String resource = Strategies.resource(spec);
    rangeProblems(spec, hyperband ? resource : null, d);
    if (spec.getMaxTrials() < 0 || spec.getMaxTrials() > MAX_TRIALS) d.add("maxTrials: must be between 1 and " + MAX_TRIALS);
    int maxTrials = spec.getMaxTrials() == 0 ? 10 : spec.getMaxTrials();
    if (spec.getMaxParallelTrials() < 0) d.add("maxParallelTrials: must not be negative");
    String es = spec.getEarlyStopping().getType().toLowerCase(Locale.ROOT);
    if (!es.isEmpty() && !es.equals("off") && !es.equals("median")) d.add("earlyStopping.type: '" + es + "' must be off or median");
    if (spec.getEarlyStopping().getMinTrials() < 0) d.add("earlyStopping.minTrials: must not be negative");
    if (spec.getEarlyStopping().getMinEpochs() < 0) d.add("earlyStopping.minEpochs: must not be negative");
    if (spec.getGridPoints() < 0) d.add("gridPoints: must not be negative");
    var h = spec.getHyperband();
    if (hyperband) {
      if (h.getMinResource() < 1) d.add("hyperband.minResource: required, at least 1 (the smallest " + resource + " a trial gets)");
      if (h.getMaxResource() < Math.max(1, h.getMinResource())) d.add("hyperband.maxResource: required, at least minResource");
      if (h.getEta() == 1 || h.getEta() < 0) d.add("hyperband.eta: must be at least 2 (default 3)");
    } else if (spec.hasHyperband()) {
      d.add("hyperband: only for strategy hyperband");
    }
    for (String parent : spec.getWarmStartFromList()) if (parent.isBlank()) d.add("warmStartFrom: empty tuning job id");
    if (!spec.hasTrainingJob()) {
      d.add("trainingJob: required (a training job spec, as for kiln train; the tuned hyperparameters are filled in per trial)");
    } else {
      JobSpec job = spec.getTrainingJob().getName().isEmpty()
          ? spec.getTrainingJob().toBuilder().setName(spec.getName().isEmpty() ? "trial" : spec.getName()).build()
          : spec.getTrainingJob();
      templateProblems(spec, job, hyperband ? resource : null, d);
    }
    if (d.isEmpty() && strategy.equals("grid")) {
      int size = new io.kiln.coordinator.tuning.strategy.GridSearch(Strategies.space(spec), Strategies.gridPoints(spec)).size();
      if (size > MAX_TRIALS) d.add("parameters: the grid has " + size + " points, more than " + MAX_TRIALS + "; lower gridPoints");
      if (spec.getMaxTrials() == 0) maxTrials = size; // a grid without a budget runs whole
    }
    JobSpec template = null;
    if (d.isEmpty()) {
      try {
        // stored with the job defaults filled in (resources), as a submitted job would be
        template = JobSpecs.validate(spec.getTrainingJob().toBuilder()
            .setName(spec.getTrainingJob().getName().isEmpty() ? spec.getName() : spec.getTrainingJob().getName()).build());
      } catch (InvalidSpecException e) {
        e.details().forEach(x -> d.add("trainingJob." + x));
      }
    }
    if (!d.isEmpty()) throw new InvalidSpecException("invalid tuning job spec", d);

    TuningSpec.Builder b = spec.toBuilder().setStrategy(strategy).setMaxTrials(maxTrials).setTrainingJob(template)
        .setMaxParallelTrials(Math.max(1, Math.min(maxTrials, spec.getMaxParallelTrials() == 0 ? 1 : spec.getMaxParallelTrials())));
    b.getObjectiveBuilder().setType(type.equalsIgnoreCase("Maximize") ? "Maximize" : "Minimize");
    b.getEarlyStoppingBuilder().setType(es.isEmpty() ? "off" : es);
    if (hyperband) b.getHyperbandBuilder().setResource(resource).setEta(h.getEta() == 0 ? Strategies.DEFAULT_ETA : h.getEta());
    return b.build();
  }

  private static void rangeProblems(TuningSpec spec, String resource, List<String> d) {
    if (spec.getParametersCount() == 0) d.add("parameters: at least one hyperparameter range is required");
    Set<String> names = new HashSet<>();
    for (int i = 0; i < spec.getParametersCount(); i++) {
      ParameterRangeSpec p = spec.getParameters(i);
      String f = "parameters[" + i + "]" + (p.getName().isEmpty() ? "" : " (" + p.getName() + ")") + ": ";
      if (p.getName().isEmpty()) d.add(f + "name required");
      else if (!names.add(p.getName())) d.add(f + "defined twice");
      else if (p.getName().equals(resource)) d.add(f + "'" + resource + "' is Hyperband's resource; it cannot also be tuned");
      String type = p.getType().toLowerCase(Locale.ROOT);
      if (!TYPES.contains(type)) {
        d.add(f + "type '" + p.getType() + "' must be continuous, integer or categorical");
        continue;
      }
      String scale = p.getScale().toLowerCase(Locale.ROOT);
      if (!scale.isEmpty() && !scale.equals("linear") && !scale.equals("log")) d.add(f + "scale '" + p.getScale() + "' must be linear or log");
      if (type.equals("categorical")) {
        if (p.getValuesCount() == 0) d.add(f + "values: at least one value is required");
        if (new LinkedHashSet<>(p.getValuesList()).size() != p.getValuesCount()) d.add(f + "values: duplicates");
        continue;
      }
      if (p.getValuesCount() > 0) d.add(f + "values: only for categorical ranges (numeric ones take min and max)");
      if (!Double.isFinite(p.getMin()) || !Double.isFinite(p.getMax()) || p.getMin() >= p.getMax()) {
        d.add(f + "needs min < max (got min " + p.getMin() + ", max " + p.getMax() + ")");
      }
      if (type.equals("integer") && (p.getMin() != Math.rint(p.getMin()) || p.getMax() != Math.rint(p.getMax()))) {
        d.add(f + "an integer range needs whole-number min and max");
      }
      if (scale.equals("log") && !(p.getMin() > 0)) d.add(f + "a log scale needs min > 0");
    }
  }

  /** The template with the tuned values at their extremes must be a valid job. */
  private static void templateProblems(TuningSpec spec, JobSpec job, String resource, List<String> d) {
    List<Map<String, String>> probes = new ArrayList<>();
    probes.add(new java.util.LinkedHashMap<>());
    probes.add(new java.util.LinkedHashMap<>());
    int categories = 1;
    for (ParameterRangeSpec p : spec.getParametersList()) categories = Math.max(categories, p.getValuesCount());
    while (probes.size() < categories) probes.add(new java.util.LinkedHashMap<>());
    for (ParameterRangeSpec p : spec.getParametersList()) {
      if (p.getName().isEmpty()) continue;
      String type = p.getType().toLowerCase(Locale.ROOT);
      for (int i = 0; i < probes.size(); i++) {
        String v;
        if (type.equals("categorical")) {
          if (p.getValuesCount() == 0) continue;
          v = p.getValues(i % p.getValuesCount());
        } else if (type.equals("integer")) {
          v = Long.toString((long) (i % 2 == 0 ? p.getMin() : p.getMax()));
        } else {
          v = Double.toString(i % 2 == 0 ? p.getMin() : p.getMax());
        }
        probes.get(i).put(p.getName(), v);
      }
    }
    if (resource != null) {
      probes.get(0).put(resource, Long.toString(Math.max(1, spec.getHyperband().getMinResource())));
      probes.get(1).put(resource, Long.toString(Math.max(1, spec.getHyperband().getMaxResource())));
    }
    Set<String> seen = new LinkedHashSet<>();
    for (Map<String, String> probe : probes) {
      try {
        JobSpecs.validate(job.toBuilder().putAllHyperparameters(probe).build());
      } catch (InvalidSpecException e) {
        for (String detail : e.details()) {
          String name = detail.startsWith("hyperparameters.") ? detail.substring(16, Math.max(16, detail.indexOf(':'))) : "";
          String where = probe.containsKey(name) ? " (with the tuned value " + name + "=" + probe.get(name) + ")" : "";
          if (seen.add(detail)) d.add("trainingJob." + detail + where);
        }
      }
    }
  }

  private static void stringify(ObjectNode root, String field, List<String> details) {
    JsonNode n = root.get(field);
    if (n == null || n.isNull()) return;
    if (!n.isObject()) {
      details.add("trainingJob." + field + ": must be an object of name: value pairs");
      return;
    }
    ObjectNode o = (ObjectNode) n;
    for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getValue().isValueNode() && !e.getValue().isNull()) o.put(e.getKey(), e.getValue().asText());
      else details.add("trainingJob." + field + "." + e.getKey() + ": must be a string or a number");
    }
  }
}

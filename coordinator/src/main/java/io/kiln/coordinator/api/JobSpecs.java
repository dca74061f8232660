package io.kiln.coordinator.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import java.net.URI;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Parses and validates job specs from JSON (the protobuf JSON mapping of {@link JobSpec}), filling
 * in defaults. Every problem is reported at once, one detail per field, so a user fixes a spec in
 * one round.
 */
public final class JobSpecs {
  /** Model definitions and algorithms a worker can run; extend as algorithms are added. */
  public static final Set<String> KNOWN_ALGORITHMS = Set.of("mlp", "cnn", "xgboost", "knn", "kmeans", "linear-learner", "pca", "script", "java",
      "processing");
  /** Built-in algorithms whose hyperparameters the worker checks (the coordinator passes them through). */
  static final Set<String> WORKER_CHECKED = Set.of("xgboost", "knn", "kmeans", "linear-learner", "pca");
  /** Script mode (docs/script-mode.md): the user's code, settings in reserved hyperparameters. */
  static final String SCRIPT = "script";
  /** A user's model jar trained by Kiln's loop (docs/java-models.md). */
  static final String JAVA = "java";
  /** A processing job (docs/processing.md): script-mode code with inputs and outputs. */
  static final String PROCESSING = "processing";
  private static final Pattern JAVA_CLASS = Pattern.compile("[\\p{L}_$][\\p{L}\\p{N}_$]*(\\.[\\p{L}_$][\\p{L}\\p{N}_$]*)*");
  private static final Set<String> COLLECTIVES = Set.of("auto", "ring", "nccl");
  private static final Pattern NAME = Pattern.compile("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?");
  private static final ObjectMapper JSON = new ObjectMapper();

  private JobSpecs() {}

  public static JobSpec parse(String json) throws InvalidSpecException {
    JsonNode tree;
    try {
      tree = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new InvalidSpecException("malformed JSON", List.of(e.getOriginalMessage()));
    }
    if (tree == null || !tree.isObject()) throw new InvalidSpecException("the job spec must be a JSON object", List.of());
    List<String> details = new ArrayList<>();
    stringifyValues((ObjectNode) tree, "hyperparameters", details);
    stringifyValues((ObjectNode) tree, "channels", details);
    elasticWorkers((ObjectNode) tree, details);
    if (!details.isEmpty()) throw new InvalidSpecException("invalid job spec", details);
    JobSpec.Builder b = JobSpec.newBuilder();
    try {
      JsonFormat.parser().merge(tree.toString(), b);
    } catch (InvalidProtocolBufferException e) {
      throw new InvalidSpecException("invalid job spec", List.of(cleanProtobufMessage(e.getMessage())));
    }
    return validate(b.build());
  }

  /**
   * {@code resources.workers: {min: 2, max: 4}} (an elastic job, as the docs write it) becomes
   * minWorkers/maxWorkers with workers = max (the scheduler starts with as many as fit).
   */
  private static void elasticWorkers(ObjectNode tree, List<String> details) {
    JsonNode res = tree.get("resources");
    if (res == null || !res.isObject() || !res.has("workers") || !res.get("workers").isObject()) return;
    JsonNode w = res.get("workers");
    ObjectNode r = (ObjectNode) res;
    for (java.util.Iterator<String> it = w.fieldNames(); it.hasNext(); ) {
      String f = it.next();
      if (!f.equals("min") && !f.equals("max")) details.add("resources.workers." + f + ": unknown (use min and max)");
    }
    if (!w.path("min").canConvertToInt() || !w.path("max").canConvertToInt()) {
      details.add("resources.workers: {min, max} must both be whole numbers");
      return;
    }
    r.put("minWorkers", w.get("min").asInt());
    r.put("maxWorkers", w.get("max").asInt());
    r.put("workers", w.get("max").asInt());
  }

  /** Checks a spec and returns it with defaults filled in. */
  public static JobSpec validate(JobSpec spec) throws InvalidSpecException {
    List<String> d = new ArrayList<>();
    if (spec.getName().isEmpty()) d.add("name: required");
    else if (!NAME.matcher(spec.getName()).matches()) d.add("name: '" + spec.getName() + "' must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit");
    if (spec.getAlgorithm().isEmpty()) d.add("algorithm: required (one of " + known() + ")");
    else if (!KNOWN_ALGORITHMS.contains(spec.getAlgorithm())) d.add("algorithm: unknown '" + spec.getAlgorithm() + "' (known: " + known() + ")");
    boolean processing = spec.getAlgorithm().equals(PROCESSING);
    boolean script = spec.getAlgorithm().equals(SCRIPT) || processing;
    if (!script && !spec.getChannelsMap().containsKey("train")) d.add("channels.train: required (a directory path or file: URI)");
    for (Map.Entry<String, String> c : spec.getChannelsMap().entrySet()) {
      String problem = uriProblem(c.getValue());
      if (problem != null) d.add("channels." + c.getKey() + ": " + problem);
    }
    // the DJL models' hyperparameters; the built-ins (xgboost, knn, ...) check their own on the worker (unknown names, ranges)
    Map<String, String> hp = WORKER_CHECKED.contains(spec.getAlgorithm()) || script ? Map.of() : spec.getHyperparametersMap();
    if (script) scriptProblems(spec.getHyperparametersMap(), d);
    if (processing) ProcessingSpecs.problems(spec, d);
    if (spec.getAlgorithm().equals(JAVA)) javaProblems(spec.getHyperparametersMap(), d);
    intParam(hp, "epochs", 1, 1000, d);
    intParam(hp, "batch_size", 1, 65536, d);
    intParam(hp, "seed", Integer.MIN_VALUE, Integer.MAX_VALUE, d);
    positiveDouble(hp, "learning_rate", d);
    if (hp.containsKey("momentum")) {
      Double m = parseDouble(hp.get("momentum"));
      if (m == null || m < 0 || m >= 1) d.add("hyperparameters.momentum: '" + hp.get("momentum") + "' must be a number in [0, 1)");
    }
    if (!spec.getAlgorithm().equals(JAVA) && hp.containsKey("hidden") && !hp.get("hidden").matches("\\s*[1-9]\\d{0,5}(\\s*,\\s*[1-9]\\d{0,5})*\\s*")) {
      d.add("hyperparameters.hidden: '" + hp.get("hidden") + "' must be comma-separated positive layer sizes, e.g. 256,128");
    }
    Resources r = spec.getResources();
    if (r.getWorkers() < 0 || r.getWorkers() > 64) d.add("resources.workers: " + r.getWorkers() + " must be between 1 and 64");
    if (r.getCpusPerWorker() < 0) d.add("resources.cpusPerWorker: must not be negative");
    if (r.getGpusPerWorker() < 0) d.add("resources.gpusPerWorker: must not be negative");
    if (r.getMemoryMbPerWorker() < 0) d.add("resources.memoryMbPerWorker: must not be negative");
    if (!r.getCollective().isEmpty() && !COLLECTIVES.contains(r.getCollective())) {
      d.add("resources.collective: '" + r.getCollective() + "' must be one of auto, ring, nccl");
    }
    if (r.getMinWorkers() < 0 || r.getMaxWorkers() < 0 || (r.getMaxWorkers() > 0 && r.getMinWorkers() > r.getMaxWorkers())) {
      d.add("resources.minWorkers/maxWorkers: need 0 <= minWorkers <= maxWorkers");
    }
    if (!r.getRecovery().isEmpty() && !r.getRecovery().equals("elastic") && !r.getRecovery().equals("restart")) {
      d.add("resources.recovery: '" + r.getRecovery() + "' must be elastic or restart");
    }
    if (r.getMaxWorkers() > 64) d.add("resources.maxWorkers: " + r.getMaxWorkers() + " must be at most 64");
    if (r.getMaxWorkers() > 1 && r.getCollective().equals("nccl")) {
      d.add("resources.collective: elastic jobs (maxWorkers > 1) use the ring; nccl groups cannot regroup yet");
    }
    if (spec.getStopping().getMaxRuntimeSeconds() < 0) d.add("stopping.maxRuntimeSeconds: must not be negative");
    if (spec.getStopping().getMaxSteps() < 0) d.add("stopping.maxSteps: must not be negative");
    if (spec.getCheckpoint().getEverySteps() < 0) d.add("checkpoint.everySteps: must not be negative");
    if (spec.getCheckpoint().getKeep() < 0) d.add("checkpoint.keep: must not be negative");
    if (!spec.getCheckpoint().getResumeFrom().isEmpty() && uriProblem(spec.getCheckpoint().getResumeFrom()) != null) {
      d.add("checkpoint.resumeFrom: " + uriProblem(spec.getCheckpoint().getResumeFrom()));
    }
    if (!spec.getOutputUri().isEmpty() && uriProblem(spec.getOutputUri()) != null) d.add("outputUri: " + uriProblem(spec.getOutputUri()));
    if (!d.isEmpty()) throw new InvalidSpecException("invalid job spec", d);

    Resources.Builder rb = r.toBuilder()
        .setWorkers(Math.max(1, r.getWorkers()))
        .setCpusPerWorker(Math.max(1, r.getCpusPerWorker()));
    if (rb.getCollective().isEmpty()) rb.setCollective("auto");
    return spec.toBuilder().setResources(rb).build();
  }

  /**
   * Script mode's reserved hyperparameters (as the SageMaker SDK sends them): {@code sagemaker_program}
   * (the entry point, required), {@code sagemaker_submit_directory} (the packaged source: absolute path
   * or file: URI), {@code kiln_metric_definitions} (JSON list of {"Name", "Regex"}). The script's own
   * hyperparameters are not checked.
   */
  private static void scriptProblems(Map<String, String> hp, List<String> d) {
    String program = unquoteJson(hp.getOrDefault("sagemaker_program", "")).trim();
    String submit = unquoteJson(hp.getOrDefault("sagemaker_submit_directory", "")).trim();
    if (program.isEmpty()) {
      d.add("hyperparameters.sagemaker_program: required for algorithm 'script': the entry point, e.g. train.py "
          + "(kiln train --entry-point)");
    } else if (submit.isEmpty() && !program.startsWith("/")) {
      d.add("hyperparameters.sagemaker_submit_directory: required when the entry point '" + program
          + "' is relative (kiln train --source-dir)");
    } else if (!submit.isEmpty() && (program.startsWith("/") || java.util.Arrays.asList(program.split("/")).contains(".."))) {
      d.add("hyperparameters.sagemaker_program: '" + program + "' must be a relative path inside the source directory");
    }
    if (!submit.isEmpty() && uriProblem(submit) != null) {
      d.add("hyperparameters.sagemaker_submit_directory: " + uriProblem(submit));
    }
    String metrics = unquoteJson(hp.getOrDefault("kiln_metric_definitions", "")).trim();
    if (metrics.isEmpty()) return;
    String field = "hyperparameters.kiln_metric_definitions: ";
    JsonNode list;
    try {
      list = JSON.readTree(metrics);
    } catch (JsonProcessingException e) {
      d.add(field + "not valid JSON (" + e.getOriginalMessage() + ")");
      return;
    }
    if (list == null || !list.isArray()) {
      d.add(field + "must be a JSON list of {\"Name\": ..., \"Regex\": ...}");
      return;
    }
    java.util.Set<String> names = new java.util.HashSet<>();
    for (int i = 0; i < list.size(); i++) {
      JsonNode m = list.get(i);
      String name = m.path("Name").asText(m.path("name").asText(""));
      String regex = m.path("Regex").asText(m.path("regex").asText(""));
      if (!m.isObject() || name.isBlank()) {
        d.add(field + "definition " + (i + 1) + " needs a Name");
      } else if (regex.isEmpty()) {
        d.add(field + "metric '" + name + "' needs a Regex");
      } else if (!names.add(name)) {
        d.add(field + "metric '" + name + "' is defined twice");
      } else {
        try {
          Pattern.compile(regex);
        } catch (java.util.regex.PatternSyntaxException e) {
          d.add(field + "metric '" + name + "': invalid regular expression '" + regex + "': " + e.getDescription());
        }
      }
    }
  }

  /** Algorithm java: {@code kiln_jar} (absolute path or file: URI) and {@code kiln_model_class} (a class name). */
  private static void javaProblems(Map<String, String> hp, List<String> d) {
    String jar = hp.getOrDefault("kiln_jar", "").trim();
    String cls = hp.getOrDefault("kiln_model_class", "").trim();
    if (jar.isEmpty()) d.add("hyperparameters.kiln_jar: required for algorithm 'java': the model jar (kiln train --jar)");
    else if (uriProblem(jar) != null) d.add("hyperparameters.kiln_jar: " + uriProblem(jar));
    if (cls.isEmpty()) {
      d.add("hyperparameters.kiln_model_class: required for algorithm 'java': the class implementing "
          + "io.kiln.api.KilnModel (kiln train --model-class)");
    } else if (!JAVA_CLASS.matcher(cls).matches()) {
      d.add("hyperparameters.kiln_model_class: '" + cls + "' is not a Java class name, e.g. com.example.MyModel");
    }
  }

  /** A JSON-encoded string value ({@code "\"train.py\""}, as the SageMaker SDK sends reserved values) decoded. */
  static String unquoteJson(String v) {
    String t = v.trim();
    if (t.length() >= 2 && t.startsWith("\"") && t.endsWith("\"")) {
      try {
        JsonNode n = JSON.readTree(t);
        if (n != null && n.isTextual()) return n.asText();
      } catch (JsonProcessingException ignored) {
        // keep it as it is
      }
    }
    return v;
  }

  static String uriProblem(String value) {
    if (value.isBlank()) return "empty";
    if (value.startsWith("/")) return null;
    try {
      URI u = new URI(value);
      if ("file".equals(u.getScheme()) && u.getPath() != null && u.getPath().startsWith("/")) return null;
      return "'" + value + "' must be an absolute path or a file: URI (other schemes come with S3 support)";
    } catch (Exception e) {
      return "'" + value + "' is not a valid URI";
    }
  }

  private static void stringifyValues(ObjectNode root, String field, List<String> details) {
    JsonNode n = root.get(field);
    if (n == null || n.isNull()) return;
    if (!n.isObject()) {
      details.add(field + ": must be an object of name: value pairs");
      return;
    }
    ObjectNode o = (ObjectNode) n;
    for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getValue().isValueNode() && !e.getValue().isNull()) o.put(e.getKey(), e.getValue().asText());
      else details.add(field + "." + e.getKey() + ": must be a string or a number");
    }
  }

  private static void intParam(Map<String, String> hp, String name, int min, int max, List<String> d) {
    if (!hp.containsKey(name)) return;
    try {
      long v = Long.parseLong(hp.get(name).trim());
      if (v < min || v > max) d.add("hyperparameters." + name + ": " + v + " must be between " + min + " and " + max);
    } catch (NumberFormatException e) {
      d.add("hyperparameters." + name + ": '" + hp.get(name) + "' is not an integer");
    }
  }

  private static void positiveDouble(Map<String, String> hp, String name, List<String> d) {
    if (!hp.containsKey(name)) return;
    Double v = parseDouble(hp.get(name));
    if (v == null || !(v > 0) || v.isInfinite()) d.add("hyperparameters." + name + ": '" + hp.get(name) + "' must be a positive number");
  }

  private static Double parseDouble(String s) {
    try {
      return Double.parseDouble(s.trim());
    } catch (NumberFormatException e) {
      return null;
    }
  }

  private static String cleanProtobufMessage(String m) {
    return m == null ? "unreadable spec" : m.replace("kiln.v1.", "");
  }

  private static String known() {
    return String.join(", ", KNOWN_ALGORITHMS.stream().sorted().toList());
  }
}

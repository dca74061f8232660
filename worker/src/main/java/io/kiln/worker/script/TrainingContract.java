package io.kiln.worker.script;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.TaskAssignment;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * SageMaker's training contract for one rank of a script (docs/script-mode.md, "Environment"): the
 * files under {@code input/config/} and the variables the script gets ({@code SM_*},
 * {@code SAGEMAKER_*}, {@code TRAINING_JOB_NAME}, Kiln's own), and hyperparameters as arguments.
 */
final class TrainingContract {
  /** The task's folders (SageMaker's {@code /opt/ml} and its parts). */
  record Layout(Path base, Path config, Path data, Path model, Path output, Path outputData, Path checkpoints,
                Path code) {}

  private static final Pattern JSON_NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();
  private static final Gson COMPACT = new GsonBuilder().disableHtmlEscaping().create();

  private final TaskAssignment assignment;
  private final JobSpec spec;
  private final int rank;
  private final int world;
  private final Layout l;

  TrainingContract(TaskAssignment assignment, int rank, int world, Layout layout) {
    this.assignment = assignment;
    this.spec = assignment.getSpec();
    this.rank = rank;
    this.world = world;
    this.l = layout;
  }

  private static String host(int rank) {
    return "algo-" + (rank + 1);
  }

  /** Writes input/config/*.json and returns the script's environment (plus {@code distributed}: torchrun's). */
  Map<String, String> write(ScriptSpec script, Map<String, String> distributed)
      throws IOException {
    SortedMap<String, String> hps = script.hyperparameters();
    List<String> hosts = new ArrayList<>();
    for (int r = 0; r < world; r++) hosts.add(host(r));
    String current = host(rank);

    Files.writeString(l.config().resolve("hyperparameters.json"), GSON.toJson(hps));
    JsonObject inputData = new JsonObject();
    SortedMap<String, String> channelDirs = new TreeMap<>();
    for (String ch : new TreeMap<>(spec.getChannelsMap()).keySet()) {
      JsonObject c = new JsonObject();
      c.addProperty("TrainingInputMode", "File");
      c.addProperty("S3DistributionType", "FullyReplicated");
      c.addProperty("RecordWrapperType", "None");
      inputData.add(ch, c);
      channelDirs.put(ch, l.data().resolve(ch).toString());
    }
    Files.writeString(l.config().resolve("inputdataconfig.json"), GSON.toJson(inputData));
    JsonObject resource = new JsonObject();
    resource.addProperty("current_host", current);
    JsonArray hostArray = new JsonArray();
    hosts.forEach(hostArray::add);
    resource.add("hosts", hostArray);
    resource.addProperty("network_interface_name", "lo");
    Files.writeString(l.config().resolve("resourceconfig.json"), GSON.toJson(resource));

    int cpus = spec.getResources().getCpusPerWorker() > 0 ? spec.getResources().getCpusPerWorker()
        : Runtime.getRuntime().availableProcessors();
    int gpus = Math.max(0, spec.getResources().getGpusPerWorker());
    String hpsJson = decodedHyperparameters(hps);
    List<String> args = arguments(hps);
    String program = script.program();
    String moduleName = Path.of(program).getFileName().toString().replaceFirst("\\.(py|sh)$", "");
    String moduleDir = script.submitDirectory().isEmpty() ? l.code().toUri().toString() : script.submitDirectory();

    Map<String, String> env = new LinkedHashMap<>();
    env.put("TRAINING_JOB_NAME", assignment.getJobId());
    env.put("SAGEMAKER_BASE_DIR", l.base().toString());
    env.put("SAGEMAKER_PROGRAM", program);
    env.put("SM_MODEL_DIR", l.model().toString());
    env.put("SM_CHANNELS", COMPACT.toJson(new ArrayList<>(channelDirs.keySet())));
    channelDirs.forEach((ch, dir) -> env.put("SM_CHANNEL_" + envName(ch), dir));
    env.put("SM_HPS", hpsJson);
    hps.forEach((k, v) -> env.put("SM_HP_" + envName(k), v));
    env.put("SM_CURRENT_HOST", current);
    env.put("SM_HOSTS", COMPACT.toJson(hosts));
    env.put("SM_NUM_GPUS", String.valueOf(gpus));
    env.put("SM_NUM_CPUS", String.valueOf(cpus));
    env.put("SM_INPUT_DIR", l.base().resolve("input").toString());
    env.put("SM_INPUT_CONFIG_DIR", l.config().toString());
    env.put("SM_OUTPUT_DIR", l.output().toString());
    env.put("SM_OUTPUT_DATA_DIR", l.outputData().toString());
    env.put("SM_OUTPUT_INTERMEDIATE_DIR", l.output().resolve("intermediate").toString());
    env.put("SM_RESOURCE_CONFIG", COMPACT.toJson(resource));
    env.put("SM_INPUT_DATA_CONFIG", COMPACT.toJson(inputData));
    env.put("SM_USER_ARGS", COMPACT.toJson(args));
    env.put("SM_LOG_LEVEL", "20");
    env.put("SM_NETWORK_INTERFACE_NAME", "lo");
    env.put("SM_USER_ENTRY_POINT", program);
    env.put("SM_MODULE_NAME", moduleName);
    env.put("SM_MODULE_DIR", moduleDir);
    env.put("SM_FRAMEWORK_PARAMS", "{}");

    JsonObject training = new JsonObject();
    training.add("additional_framework_parameters", new JsonObject());
    JsonObject channelInputDirs = new JsonObject();
    channelDirs.forEach(channelInputDirs::addProperty);
    training.add("channel_input_dirs", channelInputDirs);
    training.addProperty("current_host", current);
    training.add("hosts", hostArray);
    training.add("hyperparameters", JsonParser.parseString(hpsJson));
    training.addProperty("input_config_dir", l.config().toString());
    training.add("input_data_config", inputData);
    training.addProperty("input_dir", l.base().resolve("input").toString());
    training.addProperty("is_master", rank == 0);
    training.addProperty("job_name", assignment.getJobId());
    training.addProperty("log_level", 20);
    training.addProperty("master_hostname", host(0));
    training.addProperty("model_dir", l.model().toString());
    training.addProperty("module_dir", moduleDir);
    training.addProperty("module_name", moduleName);
    training.addProperty("network_interface_name", "lo");
    training.addProperty("num_cpus", cpus);
    training.addProperty("num_gpus", gpus);
    training.addProperty("output_data_dir", l.outputData().toString());
    training.addProperty("output_dir", l.output().toString());
    training.addProperty("output_intermediate_dir", l.output().resolve("intermediate").toString());
    training.add("resource_config", resource);
    training.addProperty("user_entry_point", program);
    env.put("SM_TRAINING_ENV", COMPACT.toJson(training));

    env.put("KILN_JOB_ID", assignment.getJobId());
    env.put("KILN_JOB_NAME", spec.getName());
    env.put("KILN_TASK_ID", assignment.getTaskId());
    env.put("KILN_CHECKPOINT_DIR", l.checkpoints().toString());
    env.putAll(distributed);
    env.put("PYTHONUNBUFFERED", "1");
    env.put("OMP_NUM_THREADS", String.valueOf(Math.max(1, spec.getResources().getCpusPerWorker())));
    return env;
  }

  /** SageMaker's {@code SM_HP_<NAME>} / {@code SM_CHANNEL_<NAME>}: upper case, other characters as '_'. */
  static String envName(String name) {
    return name.toUpperCase(Locale.ROOT).replaceAll("[^A-Z0-9_]", "_");
  }

  /**
   * {@code SM_HPS} as the SageMaker training toolkit makes it: each value decoded as JSON where it
   * is a JSON number, boolean, null, list, object or quoted string, else kept as a string.
   */
  static String decodedHyperparameters(Map<String, String> hps) {
    StringBuilder sb = new StringBuilder("{");
    for (Map.Entry<String, String> e : hps.entrySet()) {
      if (sb.length() > 1) sb.append(',');
      sb.append(COMPACT.toJson(e.getKey())).append(':').append(jsonValue(e.getValue()));
    }
    return sb.append('}').toString();
  }

  private static String jsonValue(String v) {
    String t = v.trim();
    if (JSON_NUMBER.matcher(t).matches() || t.equals("true") || t.equals("false") || t.equals("null")) return t;
    if ((t.startsWith("[") && t.endsWith("]")) || (t.startsWith("{") && t.endsWith("}"))
        || (t.length() >= 2 && t.startsWith("\"") && t.endsWith("\""))) {
      try {
        return COMPACT.toJson(JsonParser.parseString(t));
      } catch (RuntimeException ignored) {
        // not JSON: a string
      }
    }
    return COMPACT.toJson(v);
  }

  /** Hyperparameters as {@code --name value} arguments, sorted by name. */
  static List<String> arguments(Map<String, String> hps) {
    List<String> args = new ArrayList<>();
    new TreeMap<>(hps).forEach((k, v) -> {
      args.add("--" + k);
      args.add(v);
    });
    return args;
  }
}

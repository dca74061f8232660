package io.kiln.cli.spec;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Builds the JobSpec JSON (docs/api.md) from a YAML file of the same shape and from command-line
 * flags, which override the file. Output is canonical: lowerCamelCase keys (snake_case accepted on
 * input), hyperparameter and channel values as strings, resource numbers as integers, relative
 * channel paths made absolute. Input errors raise {@link JobSpecException}.
 */
public final class JobSpecs {
    private static final ObjectMapper YAML = new YAMLMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final Pattern SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*:.*");

    /** Top-level fields and their kind. */
    private static final Map<String, Kind> TOP = new LinkedHashMap<>();
    private static final Map<String, Map<String, Kind>> BLOCKS = new LinkedHashMap<>();

    enum Kind { STRING, STRING_MAP, BLOCK, INT }

    static {
        TOP.put("name", Kind.STRING);
        TOP.put("algorithm", Kind.STRING);
        TOP.put("hyperparameters", Kind.STRING_MAP);
        TOP.put("channels", Kind.STRING_MAP);
        TOP.put("resources", Kind.BLOCK);
        TOP.put("stopping", Kind.BLOCK);
        TOP.put("checkpoint", Kind.BLOCK);
        TOP.put("outputUri", Kind.STRING);
        Map<String, Kind> res = new LinkedHashMap<>();
        res.put("workers", Kind.INT);
        res.put("cpusPerWorker", Kind.INT);
        res.put("memoryMbPerWorker", Kind.INT);
        res.put("gpusPerWorker", Kind.INT);
        res.put("minWorkers", Kind.INT);
        res.put("maxWorkers", Kind.INT);
        res.put("collective", Kind.STRING);
        BLOCKS.put("resources", res);
        Map<String, Kind> stop = new LinkedHashMap<>();
        stop.put("maxRuntimeSeconds", Kind.INT);
        stop.put("maxSteps", Kind.INT);
        BLOCKS.put("stopping", stop);
        Map<String, Kind> ckpt = new LinkedHashMap<>();
        ckpt.put("everySteps", Kind.INT);
        ckpt.put("resumeFrom", Kind.STRING);
        ckpt.put("keep", Kind.INT);
        BLOCKS.put("checkpoint", ckpt);
    }

    private JobSpecs() {
    }

    /** Command-line overrides; null / empty fields leave the file's value. */
    public static final class Overrides {
        public String name;
        public String algorithm;
        public Map<String, String> channels = new LinkedHashMap<>();
        public Map<String, String> hyperparameters = new LinkedHashMap<>();
        public Integer workers;
        public Integer epochs;
        public Integer batchSize;
        public String outputUri;
    }

    /** Reads a YAML (or JSON) job file; relative channel paths are resolved against its folder. */
    public static ObjectNode load(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new JobSpecException("job file not found: " + file);
        } catch (IOException e) {
            throw new JobSpecException("cannot read job file " + file + ": " + e.getMessage(), e);
        }
        Path dir = file.toAbsolutePath().getParent();
        return parse(text, file.getFileName().toString(), dir);
    }

    /**
     * Parses YAML text into a canonical spec.
     *
     * @param source  a name for messages (e.g. the file name)
     * @param baseDir folder that relative channel paths are resolved against
     */
    public static ObjectNode parse(String yaml, String source, Path baseDir) {
        JsonNode root;
        try {
            root = YAML.readTree(yaml);
        } catch (JsonProcessingException e) {
            throw new JobSpecException(source + " is not valid YAML: " + e.getOriginalMessage()
                    + location(e), e);
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            throw new JobSpecException(source + " is empty");
        }
        if (!root.isObject()) {
            throw new JobSpecException(source + " must be a mapping of JobSpec fields (name, algorithm, ...), not a "
                    + root.getNodeType().toString().toLowerCase());
        }
        return canonical((ObjectNode) root, source, baseDir);
    }

    private static String location(JsonProcessingException e) {
        return e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")";
    }

    /** Applies flags over a spec (returns a new tree). */
    public static ObjectNode apply(ObjectNode spec, Overrides o, Path cwd) {
        ObjectNode out = spec == null ? NODES.objectNode() : spec.deepCopy();
        if (o == null) {
            return out;
        }
        if (o.name != null) {
            out.put("name", o.name);
        }
        if (o.algorithm != null) {
            out.put("algorithm", o.algorithm);
        }
        if (o.outputUri != null) {
            out.put("outputUri", o.outputUri);
        }
        if (o.hyperparameters != null && !o.hyperparameters.isEmpty()) {
            ObjectNode hp = child(out, "hyperparameters");
            o.hyperparameters.forEach(hp::put);
        }
        if (o.epochs != null) {
            child(out, "hyperparameters").put("epochs", String.valueOf(positive("--epochs", o.epochs)));
        }
        if (o.batchSize != null) {
            child(out, "hyperparameters").put("batch_size", String.valueOf(positive("--batch-size", o.batchSize)));
        }
        if (o.channels != null && !o.channels.isEmpty()) {
            ObjectNode ch = child(out, "channels");
            o.channels.forEach((k, v) -> ch.put(k, channelUri(v, cwd)));
        }
        if (o.workers != null) {
            child(out, "resources").put("workers", positive("--workers", o.workers));
        }
        return out;
    }

    /** Fails with one line per missing required field. */
    public static void checkRequired(ObjectNode spec) {
        List<String> missing = new ArrayList<>();
        if (spec.path("name").asText("").isBlank()) {
            missing.add("name (use --name or 'name:' in the job file)");
        }
        if (spec.path("algorithm").asText("").isBlank()) {
            missing.add("algorithm (use --algorithm, e.g. mlp or cnn, or 'algorithm:' in the job file)");
        }
        boolean script = ScriptMode.ALGORITHM.equals(spec.path("algorithm").asText(""));
        if (!script && spec.path("channels").path("train").asText("").isBlank()) {
            missing.add("channels.train (use --channel train=/path/to/data or 'channels: {train: ...}')");
        }
        if (script && spec.path("hyperparameters").path(ScriptMode.PROGRAM).asText("").isBlank()) {
            missing.add("the script's entry point (use --entry-point train.py --source-dir DIR, or 'hyperparameters: "
                    + "{sagemaker_program: ..., sagemaker_submit_directory: ...}')");
        }
        if (!missing.isEmpty()) {
            throw new JobSpecException("the job spec is incomplete; missing:\n  " + String.join("\n  ", missing));
        }
    }

    /**
     * Parses repeated {@code KEY=VALUE} flags. The value may contain '=' and may be empty; the key
     * must not be empty. Later flags win.
     */
    public static Map<String, String> parseKeyValues(List<String> items, String flag) {
        Map<String, String> out = new LinkedHashMap<>();
        if (items == null) {
            return out;
        }
        for (String item : items) {
            int eq = item.indexOf('=');
            if (eq < 0) {
                throw new JobSpecException(flag + " expects KEY=VALUE, got '" + item + "'");
            }
            String key = item.substring(0, eq).trim();
            if (key.isEmpty()) {
                throw new JobSpecException(flag + " expects KEY=VALUE with a non-empty KEY, got '" + item + "'");
            }
            out.put(key, item.substring(eq + 1).trim());
        }
        return out;
    }

    /**
     * A channel value as the API wants it: URIs ({@code file:...}, {@code s3://...}) and absolute
     * paths stay; {@code ~/x} and relative paths become absolute paths against {@code baseDir}.
     */
    public static String channelUri(String value, Path baseDir) {
        String v = value == null ? "" : value.trim();
        if (v.isEmpty()) {
            throw new JobSpecException("a channel needs a path or URI");
        }
        if (v.startsWith("/") || SCHEME.matcher(v).matches()) {
            return v;
        }
        if (v.equals("~") || v.startsWith("~/")) {
            return Paths.get(System.getProperty("user.home") + v.substring(1)).normalize().toString();
        }
        Path base = baseDir == null ? Paths.get("").toAbsolutePath() : baseDir;
        return base.resolve(v).toAbsolutePath().normalize().toString();
    }

    /** Pretty JSON of a spec (for --dry-run). */
    public static String toJson(ObjectNode spec) {
        try {
            return new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(spec);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---------------------------------------------------------------- canonical form

    private static ObjectNode canonical(ObjectNode in, String source, Path baseDir) {
        ObjectNode out = NODES.objectNode();
        Iterator<Map.Entry<String, JsonNode>> it = in.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = camel(e.getKey());
            Kind kind = TOP.get(key);
            if (kind == null) {
                throw new JobSpecException(source + ": unknown field '" + e.getKey() + "' (known: "
                        + String.join(", ", TOP.keySet()) + ")");
            }
            if (out.has(key)) {
                throw new JobSpecException(source + ": field '" + key + "' is given twice (camelCase and snake_case)");
            }
            JsonNode v = e.getValue();
            if (v == null || v.isNull()) {
                continue;
            }
            switch (kind) {
                case STRING:
                    out.put(key, scalar(v, key, source));
                    break;
                case STRING_MAP:
                    out.set(key, stringMap(v, key, source, "channels".equals(key) ? baseDir : null));
                    break;
                case BLOCK:
                    out.set(key, block(v, key, source));
                    break;
                default:
                    throw new IllegalStateException(kind.toString());
            }
        }
        return out;
    }

    private static ObjectNode stringMap(JsonNode v, String field, String source, Path channelBase) {
        if (!v.isObject()) {
            throw new JobSpecException(source + ": '" + field + "' must be a mapping of key: value");
        }
        ObjectNode out = NODES.objectNode();
        Iterator<Map.Entry<String, JsonNode>> it = v.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            String s = scalar(e.getValue(), field + "." + e.getKey(), source);
            out.put(e.getKey(), channelBase != null ? channelUri(s, channelBase) : s);
        }
        return out;
    }

    private static ObjectNode block(JsonNode v, String field, String source) {
        if (!v.isObject()) {
            throw new JobSpecException(source + ": '" + field + "' must be a mapping");
        }
        Map<String, Kind> known = BLOCKS.get(field);
        ObjectNode out = NODES.objectNode();
        Iterator<Map.Entry<String, JsonNode>> it = v.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = camel(e.getKey());
            Kind kind = known.get(key);
            String path = field + "." + e.getKey();
            if (kind == null) {
                throw new JobSpecException(source + ": unknown field '" + path + "' (known in " + field + ": "
                        + String.join(", ", known.keySet()) + ")");
            }
            if (out.has(key)) {
                throw new JobSpecException(source + ": field '" + field + "." + key + "' is given twice");
            }
            JsonNode x = e.getValue();
            if (x == null || x.isNull()) {
                continue;
            }
            if (kind == Kind.INT) {
                out.put(key, integer(x, path, source));
            } else {
                out.put(key, scalar(x, path, source));
            }
        }
        return out;
    }

    private static String scalar(JsonNode v, String field, String source) {
        if (v == null || v.isNull()) {
            return "";
        }
        if (!v.isValueNode()) {
            throw new JobSpecException(source + ": '" + field + "' must be a single value, not a "
                    + v.getNodeType().toString().toLowerCase());
        }
        return v.asText();
    }

    private static long integer(JsonNode v, String field, String source) {
        if (v.isIntegralNumber()) {
            return v.asLong();
        }
        if (v.isTextual()) {
            try {
                return Long.parseLong(v.asText().trim());
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        throw new JobSpecException(source + ": '" + field + "' must be a whole number, got " + v);
    }

    private static int positive(String flag, int n) {
        if (n < 1) {
            throw new JobSpecException(flag + " must be at least 1, got " + n);
        }
        return n;
    }

    private static ObjectNode child(ObjectNode parent, String key) {
        JsonNode c = parent.get(key);
        if (c instanceof ObjectNode) {
            return (ObjectNode) c;
        }
        return parent.putObject(key);
    }

    /** snake_case -> lowerCamelCase (camelCase stays). */
    static String camel(String key) {
        if (key.indexOf('_') < 0) {
            return key;
        }
        StringBuilder sb = new StringBuilder();
        boolean up = false;
        for (char c : key.toCharArray()) {
            if (c == '_') {
                up = sb.length() > 0;
            } else {
                sb.append(up ? Character.toUpperCase(c) : c);
                up = false;
            }
        }
        return sb.toString();
    }
}

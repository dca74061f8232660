package io.kiln.cli.tuning;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.kiln.cli.spec.JobSpecException;
import io.kiln.cli.spec.JobSpecs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Reads a tuning job file (YAML or JSON of the TuningSpec shape, docs/tuning.md) into the API's
 * JSON: snake_case keys become lowerCamelCase, and the {@code trainingJob} goes through the same
 * canonicalisation as {@code kiln train -f} (relative channel paths made absolute). The coordinator
 * validates the rest.
 */
public final class TuningSpecFile {
    private static final YAMLMapper YAML = new YAMLMapper();
    /** Objects whose keys are field names (hyperparameter names elsewhere stay as written). */
    private static final List<String> BLOCKS = List.of("objective", "earlyStopping", "hyperband");

    private TuningSpecFile() {
    }

    public static ObjectNode load(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new JobSpecException("tuning job file not found: " + file);
        } catch (IOException e) {
            throw new JobSpecException("cannot read tuning job file " + file + ": " + e.getMessage(), e);
        }
        return parse(text, file.getFileName().toString(), file.toAbsolutePath().getParent());
    }

    public static ObjectNode parse(String yaml, String source, Path baseDir) {
        JsonNode root;
        try {
            root = YAML.readTree(yaml);
        } catch (JsonProcessingException e) {
            throw new JobSpecException(source + " is not valid YAML: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new JobSpecException(source + ": a tuning job file must be a mapping (name, strategy, objective, ...)");
        }
        ObjectNode spec = camelKeys((ObjectNode) root);
        for (String block : BLOCKS) {
            if (spec.get(block) instanceof ObjectNode o) {
                spec.set(block, camelKeys(o));
            }
        }
        if (spec.get("parameters") != null && spec.get("parameters").isArray()) {
            for (int i = 0; i < spec.get("parameters").size(); i++) {
                if (spec.get("parameters").get(i) instanceof ObjectNode o) {
                    ((com.fasterxml.jackson.databind.node.ArrayNode) spec.get("parameters")).set(i, camelKeys(o));
                }
            }
        }
        JsonNode job = spec.get("trainingJob");
        if (job != null && job.isObject()) {
            spec.set("trainingJob", JobSpecs.parse(job.toString(), source + " (trainingJob)", baseDir));
        }
        return spec;
    }

    private static ObjectNode camelKeys(ObjectNode o) {
        ObjectNode out = o.objectNode();
        for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            out.set(camel(e.getKey()), e.getValue());
        }
        return out;
    }

    static String camel(String key) {
        StringBuilder sb = new StringBuilder();
        boolean up = false;
        for (char c : key.toCharArray()) {
            if (c == '_') {
                up = true;
            } else {
                sb.append(up ? Character.toUpperCase(c) : c);
                up = false;
            }
        }
        return sb.toString();
    }

}

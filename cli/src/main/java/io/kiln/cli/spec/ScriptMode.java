package io.kiln.cli.spec;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Script mode in a job spec (docs/script-mode.md): algorithm {@code script}, with the settings in
 * reserved hyperparameters as SageMaker's SDK sends them.
 */
public final class ScriptMode {
    public static final String ALGORITHM = "script";
    public static final String PROGRAM = "sagemaker_program";
    public static final String SUBMIT_DIRECTORY = "sagemaker_submit_directory";
    public static final String METRIC_DEFINITIONS = "kiln_metric_definitions";

    private ScriptMode() {
    }

    /** Where the entry point and the source to package are. */
    public record Source(Path packageRoot, String program) {
    }

    /**
     * Resolves {@code --entry-point} against {@code --source-dir} as SageMaker does: the entry point
     * is a path inside the source folder ({@code train.py}, {@code pkg/train.py}); a path to a file
     * inside it given from the current folder works too. Without a source folder the entry point is a
     * local file that is packaged alone.
     */
    public static Source resolve(String entryPoint, Path sourceDir, Path cwd) {
        if (entryPoint == null || entryPoint.isBlank()) {
            throw new JobSpecException("--source-dir needs --entry-point (the script to run, e.g. train.py)");
        }
        String ep = entryPoint.trim();
        if (sourceDir == null) {
            Path file = cwd.resolve(ep).toAbsolutePath().normalize();
            if (!Files.isRegularFile(file)) {
                throw new JobSpecException("entry point " + ep + " not found (without --source-dir it is a local file)");
            }
            return new Source(file, file.getFileName().toString());
        }
        Path dir = cwd.resolve(sourceDir).toAbsolutePath().normalize();
        if (!Files.isDirectory(dir)) throw new JobSpecException("--source-dir " + sourceDir + " is not a folder");
        Path inside = dir.resolve(ep).normalize();
        if (!Path.of(ep).isAbsolute() && inside.startsWith(dir) && Files.isRegularFile(inside)) {
            return new Source(dir, dir.relativize(inside).toString().replace('\\', '/'));
        }
        Path fromCwd = cwd.resolve(ep).toAbsolutePath().normalize();
        if (fromCwd.startsWith(dir) && Files.isRegularFile(fromCwd)) {
            return new Source(dir, dir.relativize(fromCwd).toString().replace('\\', '/'));
        }
        throw new JobSpecException("entry point " + ep + " not found in --source-dir " + sourceDir);
    }

    /**
     * {@code --metric NAME=REGEX} flags as the JSON list of {@code {"Name", "Regex"}} that
     * {@code kiln_metric_definitions} holds (null when there are none). The regex is kept as typed
     * (not trimmed) and must compile.
     */
    public static String metricDefinitions(List<String> flags) {
        if (flags == null || flags.isEmpty()) return null;
        Map<String, String> defs = new LinkedHashMap<>();
        for (String f : flags) {
            int eq = f.indexOf('=');
            String name = eq < 0 ? "" : f.substring(0, eq).trim();
            String regex = eq < 0 ? "" : f.substring(eq + 1);
            if (name.isEmpty() || regex.isEmpty()) {
                throw new JobSpecException("--metric expects NAME=REGEX, e.g. loss='loss: ([0-9.]+)', got '" + f + "'");
            }
            try {
                Pattern.compile(regex);
            } catch (PatternSyntaxException e) {
                throw new JobSpecException("--metric " + name + ": invalid regular expression '" + regex + "': "
                        + e.getDescription());
            }
            defs.put(name, regex);
        }
        ArrayNode list = JsonNodeFactory.instance.arrayNode();
        defs.forEach((n, r) -> list.addObject().put("Name", n).put("Regex", r));
        try {
            return new ObjectMapper().writeValueAsString(list);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sets algorithm {@code script} (refusing another one) and the reserved hyperparameters. */
    public static void apply(ObjectNode spec, String program, String submitUri, String metricDefinitions) {
        String algorithm = spec.path("algorithm").asText("");
        if (!algorithm.isEmpty() && !algorithm.equals(ALGORITHM)) {
            throw new JobSpecException("--entry-point runs a script: the algorithm must be 'script', not '" + algorithm
                    + "'");
        }
        spec.put("algorithm", ALGORITHM);
        ObjectNode hp = spec.get("hyperparameters") instanceof ObjectNode o ? o : spec.putObject("hyperparameters");
        if (program != null) hp.put(PROGRAM, program);
        if (submitUri != null) hp.put(SUBMIT_DIRECTORY, submitUri);
        if (metricDefinitions != null) hp.put(METRIC_DEFINITIONS, metricDefinitions);
    }
}

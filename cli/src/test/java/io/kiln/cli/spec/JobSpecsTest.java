package io.kiln.cli.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobSpecsTest {
    private static final Path BASE = Paths.get("/jobs");

    private static final String YAML = String.join("\n",
            "name: fashion-mlp",
            "algorithm: mlp",
            "hyperparameters:",
            "  epochs: 1            # a YAML number becomes the string \"1\"",
            "  batch_size: \"128\"",
            "  learning_rate: 0.05",
            "  hidden: 256,128",
            "channels:",
            "  train: file:/usr/share/datasets/fashion-mnist",
            "resources:",
            "  workers: 2",
            "  cpus_per_worker: 1",
            "  collective: ring",
            "stopping:",
            "  max_steps: 100",
            "output_uri: file:/tmp/model",
            "");

    @Test
    void yamlBecomesCanonicalSpecJson() {
        ObjectNode s = JobSpecs.parse(YAML, "job.yaml", BASE);
        assertEquals("fashion-mlp", s.get("name").asText());
        assertEquals("mlp", s.get("algorithm").asText());
        assertEquals("1", s.get("hyperparameters").get("epochs").textValue(), "hyperparameters are strings");
        assertEquals("128", s.get("hyperparameters").get("batch_size").textValue());
        assertEquals("0.05", s.get("hyperparameters").get("learning_rate").textValue());
        assertEquals("256,128", s.get("hyperparameters").get("hidden").textValue());
        assertEquals("file:/usr/share/datasets/fashion-mnist", s.get("channels").get("train").asText());
        assertEquals(2, s.get("resources").get("workers").intValue());
        assertTrue(s.get("resources").get("workers").isIntegralNumber());
        assertEquals(1, s.get("resources").get("cpusPerWorker").intValue(), "snake_case becomes camelCase");
        assertEquals("ring", s.get("resources").get("collective").asText());
        assertEquals(100, s.get("stopping").get("maxSteps").longValue());
        assertEquals("file:/tmp/model", s.get("outputUri").asText());
        assertFalse(s.has("output_uri"));
    }

    @Test
    void flagsOverrideTheFile() {
        JobSpecs.Overrides o = new JobSpecs.Overrides();
        o.name = "other";
        o.epochs = 3;
        o.batchSize = 256;
        o.workers = 4;
        o.hyperparameters = JobSpecs.parseKeyValues(List.of("learning_rate=0.1", "momentum=0.9"), "--hp");
        o.channels = JobSpecs.parseKeyValues(List.of("val=data/val", "train=/data/train"), "--channel");
        ObjectNode file = JobSpecs.parse(YAML, "job.yaml", BASE);
        ObjectNode s = JobSpecs.apply(file, o, Paths.get("/work"));

        assertEquals("other", s.get("name").asText());
        assertEquals("mlp", s.get("algorithm").asText(), "not overridden: kept");
        assertEquals("3", s.get("hyperparameters").get("epochs").asText());
        assertEquals("256", s.get("hyperparameters").get("batch_size").asText());
        assertEquals("0.1", s.get("hyperparameters").get("learning_rate").asText());
        assertEquals("0.9", s.get("hyperparameters").get("momentum").asText());
        assertEquals("256,128", s.get("hyperparameters").get("hidden").asText());
        assertEquals("/data/train", s.get("channels").get("train").asText());
        assertEquals("/work/data/val", s.get("channels").get("val").asText(), "relative flag path: against cwd");
        assertEquals(4, s.get("resources").get("workers").intValue());
        assertEquals(1, s.get("resources").get("cpusPerWorker").intValue(), "sibling kept");
        assertEquals("2", file.get("resources").get("workers").asText(), "the input tree is not modified");
    }

    @Test
    void flagsAloneMakeASpec() {
        JobSpecs.Overrides o = new JobSpecs.Overrides();
        o.name = "n";
        o.algorithm = "cnn";
        o.channels = Map.of("train", "/d");
        ObjectNode s = JobSpecs.apply(null, o, BASE);
        JobSpecs.checkRequired(s);
        assertEquals("{\"name\":\"n\",\"algorithm\":\"cnn\",\"channels\":{\"train\":\"/d\"}}", s.toString());
    }

    @Test
    void hpParsing() {
        Map<String, String> hp = JobSpecs.parseKeyValues(
                List.of("a=1", "b = x=y", "c=", "a=2"), "--hp");
        assertEquals("2", hp.get("a"), "later flag wins");
        assertEquals("x=y", hp.get("b"), "value may contain '=' (split at the first)");
        assertEquals("", hp.get("c"), "empty value allowed");
        JobSpecException noEq = assertThrows(JobSpecException.class,
                () -> JobSpecs.parseKeyValues(List.of("epochs"), "--hp"));
        assertTrue(noEq.getMessage().contains("--hp expects KEY=VALUE, got 'epochs'"), noEq.getMessage());
        assertThrows(JobSpecException.class, () -> JobSpecs.parseKeyValues(List.of("=3"), "--hp"));
    }

    @Test
    void channelPaths() {
        assertEquals("file:/a", JobSpecs.channelUri("file:/a", BASE));
        assertEquals("s3://bucket/x", JobSpecs.channelUri("s3://bucket/x", BASE));
        assertEquals("/abs", JobSpecs.channelUri("/abs", BASE));
        assertEquals("/jobs/data", JobSpecs.channelUri("./data", BASE));
        assertEquals("/data", JobSpecs.channelUri("../data", BASE));
        assertEquals(System.getProperty("user.home") + "/d", JobSpecs.channelUri("~/d", BASE));
        assertThrows(JobSpecException.class, () -> JobSpecs.channelUri(" ", BASE));
    }

    @Test
    void relativeChannelInFileIsResolvedAgainstTheFilesFolder(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("job.yml");
        Files.writeString(f, "name: x\nalgorithm: mlp\nchannels:\n  train: data\n");
        ObjectNode s = JobSpecs.load(f);
        assertEquals(dir.resolve("data").toString(), s.get("channels").get("train").asText());
    }

    @Test
    void badInputIsReportedClearly() {
        assertMessage("not valid YAML", () -> JobSpecs.parse("name: [unclosed", "job.yaml", BASE));
        assertMessage("job.yaml is empty", () -> JobSpecs.parse("", "job.yaml", BASE));
        assertMessage("must be a mapping", () -> JobSpecs.parse("- a\n- b\n", "job.yaml", BASE));
        assertMessage("unknown field 'hyperparams'", () -> JobSpecs.parse("hyperparams: {a: 1}\n", "job.yaml", BASE));
        assertMessage("unknown field 'resources.gpus'", () -> JobSpecs.parse("resources: {gpus: 1}\n", "job.yaml", BASE));
        assertMessage("'resources.workers' must be a whole number",
                () -> JobSpecs.parse("resources: {workers: two}\n", "job.yaml", BASE));
        assertMessage("'hyperparameters.hidden' must be a single value",
                () -> JobSpecs.parse("hyperparameters: {hidden: [256, 128]}\n", "job.yaml", BASE));
        assertMessage("'channels' must be a mapping", () -> JobSpecs.parse("channels: /data\n", "job.yaml", BASE));
        assertMessage("given twice", () -> JobSpecs.parse("outputUri: a\noutput_uri: b\n", "job.yaml", BASE));
        assertMessage("job file not found", () -> JobSpecs.load(Paths.get("/nonexistent/job.yaml")));
        JobSpecs.Overrides o = new JobSpecs.Overrides();
        o.epochs = 0;
        assertMessage("--epochs must be at least 1", () -> JobSpecs.apply(null, o, BASE));
    }

    @Test
    void missingRequiredFieldsAreListed() {
        ObjectNode s = JsonNodeFactory.instance.objectNode().put("name", "x");
        JobSpecException e = assertThrows(JobSpecException.class, () -> JobSpecs.checkRequired(s));
        assertFalse(e.getMessage().contains("name ("), e.getMessage());
        assertTrue(e.getMessage().contains("algorithm"), e.getMessage());
        assertTrue(e.getMessage().contains("channels.train"), e.getMessage());
    }

    @Test
    void theDemoJobFileIsValid() {
        Path root = Paths.get(System.getProperty("kiln.repo.root", "..")).toAbsolutePath().normalize();
        ObjectNode s = JobSpecs.load(root.resolve("deploy/local/demo-job.yaml"));
        JobSpecs.checkRequired(s);
        assertEquals("fashion-mnist-mlp", s.get("name").asText());
        assertEquals("mlp", s.get("algorithm").asText());
        assertEquals("1", s.get("hyperparameters").get("epochs").asText());
        assertEquals("64", s.get("hyperparameters").get("batch_size").asText());
        assertEquals("0.05", s.get("hyperparameters").get("learning_rate").asText());
        assertEquals("0.9", s.get("hyperparameters").get("momentum").asText());
        assertEquals("256,128", s.get("hyperparameters").get("hidden").asText());
        assertEquals("/usr/share/datasets/fashion-mnist", s.get("channels").get("train").asText());
        assertEquals(1, s.get("resources").get("workers").intValue());
    }

    @Test
    void camelCase() {
        assertEquals("cpusPerWorker", JobSpecs.camel("cpus_per_worker"));
        assertEquals("outputUri", JobSpecs.camel("outputUri"));
        assertEquals("name", JobSpecs.camel("name"));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable ex) {
        JobSpecException e = assertThrows(JobSpecException.class, ex);
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
    }
}

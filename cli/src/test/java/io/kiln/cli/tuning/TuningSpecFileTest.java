package io.kiln.cli.tuning;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.cli.spec.JobSpecException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class TuningSpecFileTest {
    @Test
    void snakeCaseBecomesCamelCaseAndTheTemplateIsCanonical() {
        ObjectNode s = TuningSpecFile.parse("""
                name: t
                strategy: hyperband
                objective: {metric: test_accuracy, type: Maximize, intermediate_metric: loss}
                parameters:
                  - {name: learning_rate, type: continuous, min: 0.01, max: 0.1, scale: log}
                max_parallel_trials: 2
                early_stopping: {type: median, min_trials: 2}
                hyperband: {min_resource: 1, max_resource: 9}
                training_job:
                  algorithm: mlp
                  hyperparameters: {batch_size: 64}
                  channels: {train: data/fmnist}
                """, "t.yaml", Path.of("/work/specs"));
        assertEquals(2, s.get("maxParallelTrials").asInt());
        assertEquals("loss", s.get("objective").get("intermediateMetric").asText());
        assertEquals(2, s.get("earlyStopping").get("minTrials").asInt());
        assertEquals(9, s.get("hyperband").get("maxResource").asInt());
        assertEquals("learning_rate", s.get("parameters").get(0).get("name").asText(), "values stay as written");
        assertEquals("/work/specs/data/fmnist", s.get("trainingJob").get("channels").get("train").asText());
        assertEquals("64", s.get("trainingJob").get("hyperparameters").get("batch_size").asText());
    }

    @Test
    void badYamlAndMissingFileNameTheProblem() {
        assertTrue(assertThrows(JobSpecException.class, () -> TuningSpecFile.parse("a: [", "t.yaml", Path.of("/")))
                .getMessage().startsWith("t.yaml is not valid YAML"));
        assertTrue(assertThrows(JobSpecException.class, () -> TuningSpecFile.parse("- 1", "t.yaml", Path.of("/")))
                .getMessage().contains("must be a mapping"));
        assertTrue(assertThrows(JobSpecException.class, () -> TuningSpecFile.load(Path.of("/nonexistent/t.yaml")))
                .getMessage().contains("tuning job file not found: /nonexistent/t.yaml"));
    }
}

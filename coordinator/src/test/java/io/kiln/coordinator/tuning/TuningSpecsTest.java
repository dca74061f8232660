package io.kiln.coordinator.tuning;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.coordinator.api.InvalidSpecException;
import io.kiln.protocol.proto.TuningSpec;
import java.util.List;
import org.junit.jupiter.api.Test;

class TuningSpecsTest {
  static final String VALID = """
      {"name": "mlp-tune", "strategy": "Bayesian",
       "objective": {"metric": "test_accuracy", "type": "maximize"},
       "parameters": [
         {"name": "learning_rate", "type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"},
         {"name": "hidden", "type": "categorical", "values": ["64", 128, "256,128"]}],
       "maxTrials": 8, "maxParallelTrials": 2,
       "trainingJob": {"algorithm": "mlp", "hyperparameters": {"epochs": 1, "batch_size": 64},
                       "channels": {"train": "/data/fashion"}}}""";

  @Test
  void validSpecGetsItsDefaults() throws Exception {
    TuningSpec s = TuningSpecs.parse(VALID);
    assertEquals("bayesian", s.getStrategy());
    assertEquals("Maximize", s.getObjective().getType());
    assertEquals(List.of("64", "128", "256,128"), s.getParameters(1).getValuesList());
    assertEquals("mlp-tune", s.getTrainingJob().getName());
    assertEquals("1", s.getTrainingJob().getHyperparametersMap().get("epochs"));
    assertEquals("off", s.getEarlyStopping().getType());
    assertEquals(2, s.getMaxParallelTrials());
    assertEquals(1, s.getTrainingJob().getResources().getWorkers(), "the template gets a job's defaults");
  }

  @Test
  void aGridWithoutMaxTrialsRunsWhole() throws Exception {
    TuningSpec s = TuningSpecs.parse(VALID.replace("\"Bayesian\"", "\"grid\"").replace("\"maxTrials\": 8, ", ""));
    assertEquals(5 * 3, s.getMaxTrials(), "5 learning rates x 3 categories");
  }

  @Test
  void everyProblemIsNamed() {
    var e = assertThrows(InvalidSpecException.class, () -> TuningSpecs.parse("""
        {"name": "Bad Name", "strategy": "genetic", "objective": {"type": "best"},
         "parameters": [{"name": "lr", "type": "continuous", "min": 1, "max": 0},
                        {"name": "lr", "type": "integer", "min": 0.5, "max": 3},
                        {"name": "m", "type": "continuous", "min": 0, "max": 1, "scale": "log"},
                        {"name": "c", "type": "categorical"}],
         "maxTrials": -1, "earlyStopping": {"type": "sometimes"}}"""));
    List<String> d = e.details();
    String all = String.join("\n", d);
    for (String expected : List.of("name: 'Bad Name'", "strategy: unknown 'genetic'", "objective.metric: required",
        "objective.type: 'best' must be Minimize or Maximize", "parameters[0] (lr): needs min < max",
        "parameters[1] (lr): defined twice", "parameters[1] (lr): an integer range needs whole-number min and max",
        "parameters[2] (m): a log scale needs min > 0", "parameters[3] (c): values: at least one value is required",
        "maxTrials: must be between 1 and 10000", "earlyStopping.type: 'sometimes' must be off or median",
        "trainingJob: required")) {
      assertTrue(all.contains(expected), "missing '" + expected + "' in:\n" + all);
    }
  }

  @Test
  void aTunedValueTheTrainingJobWouldRejectFailsBeforeAnyTrial() {
    var e = assertThrows(InvalidSpecException.class, () -> TuningSpecs.parse(VALID.replace("\"min\": 0.001", "\"min\": 0")
        .replace("\"scale\": \"log\"", "\"scale\": \"linear\"").replace("\"256,128\"", "\"wide\"")));
    String all = String.join("\n", e.details());
    assertTrue(all.contains("trainingJob.hyperparameters.learning_rate: '0.0' must be a positive number (with the tuned value learning_rate=0.0)"), all);
    assertTrue(all.contains("trainingJob.hyperparameters.hidden: 'wide' must be comma-separated"), all);
  }

  @Test
  void hyperbandNeedsItsResourceAndDoesNotTuneIt() {
    var e = assertThrows(InvalidSpecException.class, () -> TuningSpecs.parse(VALID.replace("\"Bayesian\"", "\"hyperband\"")
        .replace("\"name\": \"hidden\"", "\"name\": \"epochs\"")));
    String all = String.join("\n", e.details());
    assertTrue(all.contains("hyperband.minResource: required"), all);
    assertTrue(all.contains("'epochs' is Hyperband's resource; it cannot also be tuned"), all);
  }

  @Test
  void malformedJsonAndUnknownFields() {
    assertEquals("malformed JSON", assertThrows(InvalidSpecException.class, () -> TuningSpecs.parse("{")).getMessage().split(":")[0]);
    var e = assertThrows(InvalidSpecException.class, () -> TuningSpecs.parse(VALID.replace("\"maxTrials\"", "\"maxTrails\"")));
    assertTrue(e.details().get(0).contains("maxTrails"), e.details().toString());
  }
}

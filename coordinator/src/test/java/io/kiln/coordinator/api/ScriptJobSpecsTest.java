package io.kiln.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.protocol.proto.JobSpec;
import org.junit.jupiter.api.Test;

/** Validation of script-mode jobs (algorithm "script", docs/script-mode.md). */
class ScriptJobSpecsTest {
  @Test
  void acceptsAScriptJobWithoutATrainChannelAndAnyHyperparameters() throws Exception {
    JobSpec s = JobSpecs.parse("""
        {"name":"my-script","algorithm":"script",
         "hyperparameters":{"sagemaker_program":"train.py","sagemaker_submit_directory":"file:/var/kiln/artifacts/sources/ab.tar.gz",
           "kiln_metric_definitions":"[{\\"Name\\":\\"loss\\",\\"Regex\\":\\"loss: ([0-9.]+)\\"}]",
           "epochs":"100000","hidden":"not-a-layer-list","learning_rate":"-1"}}""");
    assertEquals("script", s.getAlgorithm());
    assertEquals("100000", s.getHyperparametersOrThrow("epochs"));
    // the SageMaker SDK's JSON-encoded values are accepted too
    JobSpecs.parse("""
        {"name":"sm","algorithm":"script","channels":{"training":"/data"},
         "hyperparameters":{"sagemaker_program":"\\"src/train.py\\"","sagemaker_submit_directory":"\\"/tmp/sourcedir.tar.gz\\""}}""");
    // an absolute entry point needs no source
    JobSpecs.parse("{\"name\":\"abs\",\"algorithm\":\"script\",\"hyperparameters\":{\"sagemaker_program\":\"/opt/train.sh\"}}");
  }

  @Test
  void namesEveryScriptProblem() {
    InvalidSpecException e = assertThrows(InvalidSpecException.class, () -> JobSpecs.parse("""
        {"name":"s","algorithm":"script","hyperparameters":{"sagemaker_submit_directory":"s3x://b/k",
          "kiln_metric_definitions":"[{\\"Name\\":\\"a\\",\\"Regex\\":\\"(\\"},{\\"Regex\\":\\"x\\"},{\\"Name\\":\\"b\\"}]"}}"""));
    String all = String.join("\n", e.details());
    assertTrue(all.contains("hyperparameters.sagemaker_program: required for algorithm 'script'"), all);
    assertTrue(all.contains("hyperparameters.sagemaker_submit_directory: 's3x://b/k' must be an absolute path"), all);
    assertTrue(all.contains("metric 'a': invalid regular expression '('"), all);
    assertTrue(all.contains("definition 2 needs a Name"), all);
    assertTrue(all.contains("metric 'b' needs a Regex"), all);
    assertEquals(5, e.details().size(), all);

    String relative = String.join("\n", assertThrows(InvalidSpecException.class, () -> JobSpecs.parse(
        "{\"name\":\"s\",\"algorithm\":\"script\",\"hyperparameters\":{\"sagemaker_program\":\"train.py\"}}")).details());
    assertTrue(relative.contains("sagemaker_submit_directory: required when the entry point 'train.py' is relative"),
        relative);
    String escape = String.join("\n", assertThrows(InvalidSpecException.class, () -> JobSpecs.parse(
        "{\"name\":\"s\",\"algorithm\":\"script\",\"hyperparameters\":{\"sagemaker_program\":\"../x.py\","
            + "\"sagemaker_submit_directory\":\"/src\"}}")).details());
    assertTrue(escape.contains("must be a relative path inside the source directory"), escape);
    String notJson = String.join("\n", assertThrows(InvalidSpecException.class, () -> JobSpecs.parse(
        "{\"name\":\"s\",\"algorithm\":\"script\",\"hyperparameters\":{\"sagemaker_program\":\"/t.py\","
            + "\"kiln_metric_definitions\":\"{\\\"Name\\\":1}\"}}")).details());
    assertTrue(notJson.contains("kiln_metric_definitions: must be a JSON list"), notJson);
  }

  @Test
  void otherAlgorithmsStillNeedATrainChannel() {
    InvalidSpecException e = assertThrows(InvalidSpecException.class,
        () -> JobSpecs.parse("{\"name\":\"a\",\"algorithm\":\"mlp\"}"));
    assertTrue(String.join("\n", e.details()).contains("channels.train: required"), e.details().toString());
  }
}

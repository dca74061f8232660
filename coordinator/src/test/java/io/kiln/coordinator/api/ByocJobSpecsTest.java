package io.kiln.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.protocol.proto.JobSpec;
import org.junit.jupiter.api.Test;

/** Validation of Java model jobs (algorithm "java") and processing jobs (algorithm "processing"). */
class ByocJobSpecsTest {
  static String problems(String json) {
    return String.join("\n", assertThrows(InvalidSpecException.class, () -> JobSpecs.parse(json)).details());
  }

  @Test
  void aJavaJobNeedsItsJarClassAndTrainChannel() throws Exception {
    JobSpec ok = JobSpecs.parse("""
        {"name":"j","algorithm":"java","channels":{"train":"/data"},"resources":{"workers":2},
         "hyperparameters":{"kiln_jar":"file:/k/artifacts/sources/ab.jar","kiln_model_class":"com.example.My$Model",
           "epochs":"2","hidden":"its own format"}}""");
    assertEquals("java", ok.getAlgorithm());
    String all = problems("{\"name\":\"j\",\"algorithm\":\"java\",\"hyperparameters\":{\"kiln_jar\":\"rel.jar\","
        + "\"kiln_model_class\":\"com..Bad\",\"epochs\":\"0\"}}");
    assertTrue(all.contains("channels.train: required"), all);
    assertTrue(all.contains("hyperparameters.kiln_jar: 'rel.jar' must be an absolute path or a file: URI"), all);
    assertTrue(all.contains("hyperparameters.kiln_model_class: 'com..Bad' is not a Java class name"), all);
    assertTrue(all.contains("hyperparameters.epochs: 0 must be between 1 and 1000"), all);
    String missing = problems("{\"name\":\"j\",\"algorithm\":\"java\",\"channels\":{\"train\":\"/d\"}}");
    assertTrue(missing.contains("kiln_jar: required") && missing.contains("kiln_model_class: required"), missing);
  }

  @Test
  void aProcessingJobIsCheckedForOutputsArgumentsEnvironmentAndOneWorker() throws Exception {
    JobSpecs.parse("""
        {"name":"prep","algorithm":"processing","channels":{"raw":"/data/raw"},
         "hyperparameters":{"sagemaker_program":"prep.py","sagemaker_submit_directory":"/k/sources/ab.tar.gz",
           "kiln_processing_outputs":"{\\"train\\":\\"\\",\\"test\\":\\"file:/k/datasets/test\\"}",
           "kiln_processing_arguments":"[\\"--split\\",\\"0.2\\"]","MODE":"fast"}}""");
    String all = problems("""
        {"name":"prep","algorithm":"processing","resources":{"workers":2},
         "hyperparameters":{"sagemaker_program":"prep.py","sagemaker_submit_directory":"/k/s.tar.gz",
           "kiln_processing_outputs":"{\\"../x\\":\\"\\",\\"t\\":\\"s3x://b\\"}",
           "kiln_processing_arguments":"[1]","my-var":"1"}}""");
    assertTrue(all.contains("resources.workers: processing jobs run on one worker"), all);
    assertTrue(all.contains("output name '../x'"), all);
    assertTrue(all.contains("output t: 's3x://b' must be an absolute path"), all);
    assertTrue(all.contains("kiln_processing_arguments: must be a JSON list of strings"), all);
    assertTrue(all.contains("hyperparameters.my-var: becomes an environment variable"), all);
    assertEquals(5, all.lines().count(), all);
    assertTrue(problems("{\"name\":\"p\",\"algorithm\":\"processing\"}").contains("sagemaker_program: required"));
  }
}

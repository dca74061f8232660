package io.kiln.worker.processing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.script.ScriptFailedException;
import io.kiln.worker.script.ScriptRunner;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TaskRunner;
import io.kiln.worker.task.TaskRunners;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Processing jobs with real processes: a scikit-learn preparation script, its outputs in the store, failures. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ProcessingRunnerTest {
  @TempDir Path tmp;

  /** Standardises raw/data.csv (scikit-learn) and splits it into train/ and test/ outputs. */
  static final String PREP = """
      import argparse, json, os
      import numpy as np
      from sklearn.preprocessing import StandardScaler
      p = argparse.ArgumentParser()
      p.add_argument('--test-fraction', type=float, required=True)
      a = p.parse_args()
      base = os.environ['KILN_PROCESSING_DIR']
      cfg = json.load(open(os.path.join(os.path.dirname(base), 'config', 'processingjobconfig.json')))
      print('inputs', len(cfg['ProcessingInputs']), 'outputs', len(cfg['ProcessingOutputConfig']['Outputs']))
      d = np.loadtxt(os.path.join(base, 'input', 'raw', 'data.csv'), delimiter=',')
      x = StandardScaler().fit_transform(d[:, :-1])
      out = np.column_stack([d[:, -1], x])
      n = int(len(out) * (1 - a.test_fraction))
      np.savetxt(os.path.join(os.environ['KILN_OUTPUT_TRAIN'], 'train.csv'), out[:n], delimiter=',', fmt='%.6f')
      np.savetxt(os.path.join(base, 'output', 'test', 'test.csv'), out[n:], delimiter=',', fmt='%.6f')
      print('rows', len(out), 'mode', os.environ['MODE'])
      """;

  TaskRunner.Context context(JobSpec spec) {
    Path jobDir = tmp.resolve("artifacts/jobs/job-p");
    TaskAssignment a = TaskAssignment.newBuilder().setJobId("job-p").setTaskId("job-p-r0").setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
    TaskEvents events = new TaskEvents("job-p", "job-p-r0", "w", r -> { });
    StopSignal stop = new StopSignal();
    URI job = URI.create(jobDir.toUri().toString().replaceFirst("/?$", "/"));
    return new TaskRunner.Context(a, events, stop, new GroupRendezvous(events, stop), job, job.resolve("model/"));
  }

  TaskRunner.Outcome run(JobSpec spec) throws Exception {
    return new ProcessingRunner(ScriptRunner.Options.defaults(tmp.resolve("worker")).withKillGrace(Duration.ofSeconds(1)))
        .run(context(spec));
  }

  JobSpec.Builder spec(Path src, String program) {
    return JobSpec.newBuilder().setName("prep").setAlgorithm("processing")
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1))
        .putHyperparameters("sagemaker_program", program)
        .putHyperparameters("sagemaker_submit_directory", src.toUri().toString());
  }

  @Test
  void registeredAsTheProcessingAlgorithm() {
    assertInstanceOf(ProcessingRunner.class, TaskRunners.find("processing").orElseThrow());
  }

  @Test
  void aScikitLearnPreparationScriptWritesItsOutputsToTheStore() throws Exception {
    assumeTrue(new ProcessBuilder("/usr/bin/python3", "-c", "import sklearn").start().waitFor() == 0, "no sklearn");
    Path src = Files.createDirectories(tmp.resolve("src"));
    Files.writeString(src.resolve("prep.py"), PREP);
    Path raw = Files.createDirectories(tmp.resolve("raw"));
    StringBuilder csv = new StringBuilder();
    for (int i = 0; i < 100; i++) csv.append(i).append(',').append(i * 2 % 7).append(',').append(i % 2).append('\n');
    Files.writeString(raw.resolve("data.csv"), csv);
    Path elsewhere = tmp.resolve("datasets/test-split");
    TaskRunner.Outcome out = run(spec(src, "prep.py").putChannels("raw", raw.toString())
        .putHyperparameters(ProcessingSpec.OUTPUTS, "{\"train\": \"\", \"test\": \"" + elsewhere.toUri() + "\"}")
        .putHyperparameters(ProcessingSpec.ARGUMENTS, "[\"--test-fraction\", \"0.2\"]")
        .putHyperparameters("MODE", "standardise").build());
    Path job = tmp.resolve("artifacts/jobs/job-p");
    assertEquals(job.resolve("output").toUri().toString(), out.modelUri());
    assertEquals(80, Files.readAllLines(job.resolve("output/train/train.csv")).size());
    assertEquals(20, Files.readAllLines(elsewhere.resolve("test.csv")).size());
    assertEquals(2.0, out.metrics().get("output_files"));
    assertTrue(out.metrics().get("output_bytes") > 1000, String.valueOf(out.metrics()));
    assertTrue(Files.notExists(tmp.resolve("worker/jobs/job-p-r0")), "the task directory is removed");
  }

  @Test
  void theConfigFileFollowsSageMakerProcessing() throws Exception {
    Path src = Files.createDirectories(tmp.resolve("src"));
    // the code copies its config into an output, so the test can read it
    Files.writeString(src.resolve("cfg.sh"), "cp \"$KILN_PROCESSING_DIR/../config/processingjobconfig.json\" "
        + "\"$KILN_OUTPUT_CFG/\"\n");
    Path in = Files.createDirectories(tmp.resolve("in"));
    Files.writeString(in.resolve("x"), "1");
    run(spec(src, "cfg.sh").putChannels("data", in.toString()).putHyperparameters(ProcessingSpec.OUTPUTS,
        "{\"cfg\": \"\"}").putHyperparameters(ProcessingSpec.ARGUMENTS, "[\"a b\", \"c\"]").build());
    JsonObject c = JsonParser.parseString(Files.readString(tmp.resolve(
        "artifacts/jobs/job-p/output/cfg/processingjobconfig.json"))).getAsJsonObject();
    assertEquals("job-p", c.get("ProcessingJobName").getAsString());
    assertEquals("data", c.getAsJsonArray("ProcessingInputs").get(0).getAsJsonObject().get("InputName").getAsString());
    assertTrue(c.getAsJsonArray("ProcessingInputs").get(0).getAsJsonObject().getAsJsonObject("S3Input")
        .get("LocalPath").getAsString().endsWith("/ml/processing/input/data"));
    assertEquals("[\"a b\",\"c\"]", c.getAsJsonObject("AppSpecification").get("ContainerArguments").toString());
    assertTrue(c.getAsJsonObject("ProcessingOutputConfig").getAsJsonArray("Outputs").get(0).getAsJsonObject()
        .getAsJsonObject("S3Output").get("S3Uri").getAsString().endsWith("/jobs/job-p/output/cfg/"));
  }

  @Test
  void failuresNameTheProblem() throws Exception {
    Path src = Files.createDirectories(tmp.resolve("src"));
    Files.writeString(src.resolve("ok.sh"), "exit 0\n");
    Files.writeString(src.resolve("bad.sh"), "echo 'no rows in raw' >&2\nexit 3\n");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> run(spec(src, "ok.sh")
        .putChannels("raw", "/nonexistent/raw").build())).getMessage()
        .contains("input 'raw': /nonexistent/raw does not exist on this worker"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> run(spec(src, "ok.sh")
        .putHyperparameters(ProcessingSpec.OUTPUTS, "{\"../up\": \"\"}").build())).getMessage()
        .contains("output name '../up'"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> run(spec(src, "ok.sh")
        .setResources(Resources.newBuilder().setWorkers(2)).build())).getMessage().contains("one worker"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> run(spec(src, "missing.py").build())).getMessage()
        .contains("entry point 'missing.py' not found"));
    String m = assertThrows(ScriptFailedException.class, () -> run(spec(src, "bad.sh").build())).getMessage();
    assertEquals("exit code 3; last 1 lines of stderr:\nno rows in raw", m);
  }

}

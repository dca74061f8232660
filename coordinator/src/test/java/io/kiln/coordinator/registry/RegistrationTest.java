package io.kiln.coordinator.registry;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.coordinator.jobs.JobState;
import io.kiln.protocol.proto.JobCompleted;
import io.kiln.protocol.proto.JobEvent;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.JobStarted;
import io.kiln.protocol.proto.JobSubmitted;
import io.kiln.protocol.proto.ModelPackage;
import io.kiln.protocol.proto.ModelSignature;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a registration takes from a job and from a model folder, and what it refuses. */
class RegistrationTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path dir;

  static JobState job(String modelUri, boolean completed) {
    JobSpec spec = JobSpec.newBuilder().setName("fmnist").setAlgorithm("mlp").putChannels("train", "/data/fmnist")
        .putHyperparameters("epochs", "3").build();
    JobState s = JobState.empty("job-1").apply(JobEvent.newBuilder().setTimestampMs(1000)
        .setSubmitted(JobSubmitted.newBuilder().setSpec(spec).setSubmittedBy("alice")).build());
    s = s.apply(JobEvent.newBuilder().setTimestampMs(2000).setStarted(JobStarted.getDefaultInstance()).build());
    if (!completed) return s;
    return s.apply(JobEvent.newBuilder().setTimestampMs(3000).setCompleted(JobCompleted.newBuilder()
        .setModelUri(modelUri).putMetrics("test_accuracy", 0.83)).build());
  }

  Path djlModel() throws Exception {
    Path m = Files.createDirectories(dir.resolve("jobs/job-1/model"));
    Files.write(m.resolve("model-0000.params"), new byte[] {1, 2, 3});
    Files.writeString(m.resolve("model.json"), """
        {"format": "kiln-djl-v1", "algorithm": "mlp", "params_file": "model-0000.params",
         "input_shape": [784], "num_classes": 10}""");
    return m;
  }

  @Test
  void aCompletedJobGivesArtifactFrameworkMetricsSignatureAndLineage() throws Exception {
    Path model = djlModel();
    JobState j = job(model.toUri().toString(), true);
    ModelPackages.requireModel(j);
    URI folder = ModelArtifactCheck.folderUri(j.modelUri());
    ModelSignature sig = ModelArtifactCheck.check(folder, "mlp");
    ModelPackage p = ModelPackages.build(RegistrationRequest.fromJob("job-1"), j, folder, sig);
    assertEquals("mlp", p.getFramework());
    assertTrue(p.getArtifactUri().endsWith("/jobs/job-1/model/"), p.getArtifactUri());
    assertEquals(0.83, p.getMetricsMap().get("test_accuracy"));
    assertEquals(List.of(-1L, 784L), p.getSignature().getInputs(0).getShapeList());
    assertEquals(List.of(-1L, 10L), p.getSignature().getOutputs(0).getShapeList());
    assertEquals("job-1", p.getLineage().getTrainingJobId());
    assertEquals("/data/fmnist", p.getLineage().getChannelsMap().get("train"));
    assertEquals("3", p.getLineage().getHyperparametersMap().get("epochs"));
    assertEquals("builtin:mlp", p.getLineage().getSourceUri());
    assertEquals("alice", p.getLineage().getTrainedBy());
    assertEquals(3000, p.getLineage().getTrainedAtMs());
  }

  @Test
  void aJobThatIsNotCompletedIsRefused() {
    RegistryException e = assertThrows(RegistryException.class, () -> ModelPackages.requireModel(job("", false)));
    assertEquals(RegistryException.Kind.CONFLICT, e.kind());
    assertTrue(e.getMessage().contains("job-1 is Running, not Completed"), e.getMessage());
  }

  @Test
  void modelFoldersAreChecked() throws Exception {
    Path empty = Files.createDirectories(dir.resolve("empty"));
    assertTrue(fails(empty, "script").contains("is empty"));
    assertTrue(fails(dir.resolve("nope"), "script").contains("does not exist"));
    Path ts = Files.createDirectories(dir.resolve("ts"));
    Files.writeString(ts.resolve("model.pt"), "not a zip");
    assertTrue(fails(ts, "torchscript").contains("is not a TorchScript archive"));
    Files.write(ts.resolve("model.pt"), new byte[] {'P', 'K', 3, 4, 0, 0});
    assertEquals(ModelSignature.getDefaultInstance(), ModelArtifactCheck.check(ModelArtifactCheck.folderUri(ts.toString()), "torchscript"));
    assertTrue(fails(djlModel(), "xgboost").contains("has no kiln-model.json"));
    assertTrue(fails(djlModel(), "cnn").contains("says algorithm 'mlp', not 'cnn'"));
    assertTrue(fails(djlModel(), "tensorflow").contains("unknown framework 'tensorflow'"));
    Files.delete(djlModel().resolve("model-0000.params"));
    assertTrue(fails(dir.resolve("jobs/job-1/model"), "mlp").contains("no parameters file 'model-0000.params'"));
  }

  @Test
  void aTorchScriptModelExportedByPyTorchIsRecognised() throws Exception {
    Path ts = Files.createDirectories(dir.resolve("exported"));
    Process p = new ProcessBuilder("/usr/bin/python3", "-c", "import torch, sys; "
        + "torch.jit.save(torch.jit.script(torch.nn.Linear(4, 1)), sys.argv[1])", ts.resolve("model.pt").toString())
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assumeTrue(p.waitFor() == 0 || !out.contains("No module named 'torch'"), "python3-torch is not installed");
    assertEquals(0, p.exitValue(), out);
    assertEquals(ModelSignature.getDefaultInstance(),
        ModelArtifactCheck.check(ModelArtifactCheck.folderUri(ts.toString()), "torchscript"));
  }

  @Test
  void requestsNameEveryProblem() throws Exception {
    RegistryException e = assertThrows(RegistryException.class, () -> RegistrationRequest.parse(JSON.readTree("""
        {"modelUri": "/m", "framework": "tf", "metrics": {"a": "x"}, "colour": 1,
         "signature": {"inputs": [{"name": "", "datatype": "FLOAT", "shape": [-2]}]}}""")));
    for (String s : List.of("unknown field 'colour'", "unknown framework 'tf'", "metric 'a' is not a number",
        "signature.inputs[0]: name is required", "datatype 'FLOAT'", "shape dimension -2")) {
      assertTrue(e.getMessage().contains(s), s + " in " + e.getMessage());
    }
    assertTrue(assertThrows(RegistryException.class, () -> RegistrationRequest.parse(JSON.readTree("{}")))
        .getMessage().contains("give trainingJobId"));
    assertTrue(assertThrows(RegistryException.class, () -> ModelArtifactCheck.folderUri("s3://b/m"))
        .getMessage().contains("only file: URIs"));
  }

  private static String fails(Path folder, String framework) {
    return assertThrows(RegistryException.class,
        () -> ModelArtifactCheck.check(ModelArtifactCheck.folderUri(folder.toString()), framework)).getMessage();
  }
}

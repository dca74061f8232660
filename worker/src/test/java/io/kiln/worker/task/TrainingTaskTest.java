package io.kiln.worker.task;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.CheckpointConfig;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.StoppingCondition;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskCheckpoint;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.TestData;
import io.kiln.worker.checkpoint.Checkpoints;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.StopSignal;
import io.kiln.worker.training.TrainingData;
import io.kiln.worker.training.TrainingLoop;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingTaskTest {
  @TempDir Path tmp;

  static TaskAssignment assignment(String algorithm, String trainUri, Path jobDir, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm(algorithm).putChannels("train", trainUri)
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    return TaskAssignment.newBuilder().setJobId("job-1").setTaskId("job-1-r0").setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
  }

  static List<TaskReport> run(TaskAssignment a, StopSignal stop) {
    List<TaskReport> reports = new CopyOnWriteArrayList<>();
    new TrainingTask(a, new TaskEvents(a.getJobId(), a.getTaskId(), "w-test", reports::add), stop,
        GradientSyncFactory.SINGLE_RANK_ONLY, URI.create("file:/nonexistent/")).run();
    return reports;
  }

  @Test
  void trainsEvaluatesAndWritesTheModel() throws Exception {
    Path jobDir = tmp.resolve("jobs/job-1");
    List<TaskReport> reports = run(assignment("mlp", "file:" + TestData.fashionSmall(), jobDir, "epochs", "3",
        "hidden", "128"), new StopSignal());
    assertEquals(TaskReport.KindCase.STARTED, reports.get(0).getKindCase());
    TaskReport last = reports.get(reports.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(), reports.toString());
    assertTrue(reports.stream().anyMatch(r -> r.getKindCase() == TaskReport.KindCase.PROGRESS));
    assertTrue(reports.stream().anyMatch(r -> r.getKindCase() == TaskReport.KindCase.LOGS));
    for (TaskReport r : reports) {
      assertEquals("job-1", r.getJobId());
      assertEquals("job-1-r0", r.getTaskId());
      assertEquals("w-test", r.getWorkerId());
    }
    var metrics = last.getCompleted().getMetricsMap();
    double acc = metrics.get("test_accuracy");
    assertTrue(acc > 0.6, "accuracy " + acc);
    for (String k : List.of("train_loss", "samples_per_sec", "train_seconds")) assertTrue(metrics.containsKey(k), k);

    Path modelDir = jobDir.resolve("model");
    assertEquals(modelDir.toUri().toString(), last.getCompleted().getModelUri());
    assertTrue(last.getCompleted().getModelUri().startsWith("file:///") && last.getCompleted().getModelUri().endsWith(
        "/model/"));
    assertTrue(Files.exists(modelDir.resolve("model-0000.params")));
    JsonObject json = JsonParser.parseString(Files.readString(modelDir.resolve("model.json"))).getAsJsonObject();
    assertEquals("mlp", json.get("algorithm").getAsString());
    assertEquals("128", json.getAsJsonObject("hyperparameters").get("hidden").getAsString());
    assertEquals("3", json.getAsJsonObject("hyperparameters").get("epochs").getAsString());
    assertEquals(784, json.getAsJsonArray("input_shape").get(0).getAsInt());
    assertEquals("T-shirt/top", json.getAsJsonArray("class_names").get(0).getAsString());
    assertEquals(acc, json.getAsJsonObject("metrics").get("test_accuracy").getAsDouble(), 1e-12);
    JsonObject m = JsonParser.parseString(Files.readString(jobDir.resolve("metrics.json"))).getAsJsonObject();
    assertEquals(acc, m.get("test_accuracy").getAsDouble(), 1e-12);

    // the saved folder loads back into the same classifier
    try (Model model = ModelArtifacts.load(modelDir);
        NDManager data = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      TrainingData test = TrainingData.of(MnistDataset.loadTest(TestData.fashionSmall()), data);
      var d = ModelArtifacts.readDescription(modelDir);
      assertEquals(acc, TrainingLoop.accuracy(model.getBlock(), d.inputShape(), test, null), 1e-9);
    }
  }

  @Test
  void outputUriOverridesTheModelFolder() throws Exception {
    Path out = tmp.resolve("elsewhere/my-model");
    TaskAssignment a = assignment("mlp", TestData.fashionSmall().toString(), tmp.resolve("job"), "hidden", "16");
    a = a.toBuilder().setSpec(a.getSpec().toBuilder().setOutputUri(out.toUri().toString())
        .setStopping(StoppingCondition.newBuilder().setMaxSteps(3))).build();
    List<TaskReport> reports = run(a, new StopSignal());
    TaskReport last = reports.get(reports.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(), reports.toString());
    assertEquals(out, Path.of(URI.create(last.getCompleted().getModelUri())));
    assertTrue(Files.exists(out.resolve("model.json")));
    assertEquals(3.0, last.getCompleted().getMetricsMap().get("steps"));
  }

  @Test
  void failuresBecomeOneFailedReport() {
    List<TaskReport> r = run(assignment("resnet", TestData.fashionSmall().toString(), tmp), new StopSignal());
    assertEquals(2, r.stream().filter(x -> x.getKindCase() != TaskReport.KindCase.LOGS).count(), r.toString());
    TaskReport last = r.get(r.size() - 1);
    assertEquals("invalid job spec: unknown algorithm 'resnet' (known: cnn, mlp)", last.getFailed().getReason());

    r = run(assignment("mlp", TestData.fashionSmall().toString(), tmp, "batch_size", "lots"), new StopSignal());
    assertEquals("invalid job spec: hyperparameter batch_size: 'lots' is not an integer",
        r.get(r.size() - 1).getFailed().getReason());

    r = run(assignment("mlp", tmp.resolve("no-such-dir").toString(), tmp), new StopSignal());
    String reason = r.get(r.size() - 1).getFailed().getReason();
    assertTrue(reason.startsWith("cannot load data: ") && reason.contains("no-such-dir") && reason.contains(
        "does not exist"), reason);

    TaskAssignment twoRanks = assignment("mlp", TestData.fashionSmall().toString(), tmp).toBuilder().setWorldSize(2)
        .build();
    r = run(twoRanks, new StopSignal());
    reason = r.get(r.size() - 1).getFailed().getReason();
    assertTrue(reason.contains("world_size 2"), reason);
  }

  @Test
  void stopBecomesStoppedReport() {
    StopSignal stop = new StopSignal();
    stop.stop("by test");
    List<TaskReport> r = run(assignment("mlp", TestData.fashionSmall().toString(), tmp), stop);
    assertEquals("stopped: by test", r.get(r.size() - 1).getFailed().getReason());
  }

  static TaskAssignment withCheckpoints(TaskAssignment a, String jobId, int everySteps, int keep, String resumeFrom) {
    return a.toBuilder().setJobId(jobId).setTaskId(jobId + "-r0").setSpec(a.getSpec().toBuilder().setCheckpoint(
        CheckpointConfig.newBuilder().setEverySteps(everySteps).setKeep(keep).setResumeFrom(resumeFrom))).build();
  }

  static String logText(List<TaskReport> reports) {
    return reports.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.LOGS)
        .flatMap(r -> r.getLogs().getLinesList().stream()).map(l -> l.getMessage()).collect(Collectors.joining("\n"));
  }

  /** Rank 0 reports each complete checkpoint, before completing; a later job resumes from the folder. */
  @Test
  void checkpointsAreReportedAndAJobResumesFromThem() throws Exception {
    Path jobDir = tmp.resolve("jobs/job-c1");
    TaskAssignment a = withCheckpoints(assignment("mlp", TestData.fashionSmall().toString(), jobDir, "hidden", "16"),
        "job-c1", 20, 2, "");
    List<TaskReport> reports = run(a, new StopSignal());
    TaskReport last = reports.get(reports.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last.getKindCase(), reports.toString());
    List<TaskCheckpoint> checkpoints = reports.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.CHECKPOINT)
        .map(TaskReport::getCheckpoint).toList();
    // due at 20, 40 and the epoch end 47 (one may be skipped if the previous write were slow; the last never is)
    assertTrue(checkpoints.size() >= 2, checkpoints.toString());
    TaskCheckpoint end = checkpoints.get(checkpoints.size() - 1);
    assertEquals(47, end.getStep());
    assertEquals(1, end.getEpoch());
    assertEquals(47, end.getStepInEpoch());
    assertTrue(end.getEpochEnd());
    assertEquals(jobDir.resolve("checkpoints/step-00000047").toUri().toString(), end.getUri());
    assertEquals(20, checkpoints.get(0).getStep());
    JsonObject ck = JsonParser.parseString(Files.readString(Path.of(URI.create(end.getUri())).resolve(
        "checkpoint.json"))).getAsJsonObject();
    assertEquals("job-c1", ck.get("job_id").getAsString());
    assertEquals(47, ck.getAsJsonObject("position").get("global_step").getAsLong());
    for (TaskReport r : reports) assertEquals("job-c1", r.getJobId());
    // keep = 2
    assertEquals(2, Checkpoints.list(io.kiln.artifacts.ArtifactStore.forRoot(jobDir.toUri()),
        jobDir.resolve("checkpoints").toUri()).size());
    assertTrue(logText(reports).contains("checkpoints: " + checkpoints.size() + " written"), logText(reports));

    // a second job continues job-c1 for a second epoch from its newest checkpoint (the job folder)
    Path jobDir2 = tmp.resolve("jobs/job-c2");
    TaskAssignment b = withCheckpoints(assignment("mlp", TestData.fashionSmall().toString(), jobDir2, "hidden", "16",
        "epochs", "2"), "job-c2", 0, 0, jobDir.toString());
    List<TaskReport> reports2 = run(b, new StopSignal());
    TaskReport last2 = reports2.get(reports2.size() - 1);
    assertEquals(TaskReport.KindCase.COMPLETED, last2.getKindCase(), reports2.toString());
    assertEquals(94.0, last2.getCompleted().getMetricsMap().get("steps"));
    assertTrue(logText(reports2).contains("resumed from " + end.getUri() + " at epoch 2 sample 0 (step 0 in the epoch, global step 47)"),
        logText(reports2));
    List<TaskCheckpoint> checkpoints2 = reports2.stream().filter(r -> r.getKindCase() == TaskReport.KindCase.CHECKPOINT)
        .map(TaskReport::getCheckpoint).toList();
    assertEquals(1, checkpoints2.size(), checkpoints2.toString());
    assertEquals(94, checkpoints2.get(0).getStep());
    assertEquals(2, checkpoints2.get(0).getEpoch());
  }

  @Test
  void aBadCheckpointFailsTheTaskWithItsUriAndProblem() throws Exception {
    Path jobDir = tmp.resolve("jobs/job-k1");
    TaskAssignment a = withCheckpoints(assignment("mlp", TestData.fashionSmall().toString(), jobDir, "hidden", "16"),
        "job-k1", 0, 0, "");
    List<TaskReport> r = run(a, new StopSignal());
    assertEquals(TaskReport.KindCase.COMPLETED, r.get(r.size() - 1).getKindCase(), r.toString());
    Path state = jobDir.resolve("checkpoints/step-00000047/state.bin");
    byte[] bytes = Files.readAllBytes(state);
    bytes[bytes.length / 2] ^= 0x10;
    Files.write(state, bytes);

    TaskAssignment b = withCheckpoints(assignment("mlp", TestData.fashionSmall().toString(), tmp.resolve("jobs/job-k2"),
        "hidden", "16"), "job-k2", 0, 0, jobDir.resolve("checkpoints").toUri().toString());
    r = run(b, new StopSignal());
    String reason = r.get(r.size() - 1).getFailed().getReason();
    assertTrue(reason.startsWith("cannot resume from checkpoint: " + state.toUri() + ": CRC32 mismatch"), reason);

    TaskAssignment c = withCheckpoints(assignment("mlp", TestData.fashionSmall().toString(), tmp.resolve("jobs/job-k3"),
        "hidden", "16"), "job-k3", 0, 0, tmp.resolve("no-such-job").toString());
    r = run(c, new StopSignal());
    reason = r.get(r.size() - 1).getFailed().getReason();
    assertEquals("cannot resume from checkpoint: " + tmp.resolve("no-such-job").toUri() + "/: no such checkpoint "
        + "folder (it does not exist)", reason);

    // (another batch size or world size is accepted: the checkpoint's position is a sample offset)
  }

}

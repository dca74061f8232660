package io.kiln.worker.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.worker.TestData;
import io.kiln.worker.checkpoint.Checkpoint;
import io.kiln.worker.checkpoint.CheckpointException;
import io.kiln.worker.checkpoint.CheckpointMetadata;
import io.kiln.worker.checkpoint.CheckpointWriter;
import io.kiln.worker.checkpoint.Checkpoints;
import io.kiln.worker.data.MnistDataset;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Training N steps straight equals training K steps, checkpointing, and resuming in a fresh loop
 * for N-K steps: mid-epoch, at an epoch end, and (same global batch) on another number of ranks.
 * 3,000 samples, batch 64: 47 steps per epoch (the last one of 56 samples).
 */
class CheckpointResumeTest {
  static final Map<String, String> HP = Map.of("hidden", "32");
  static final TrainingConfig CFG = TrainingConfig.defaults().withEpochs(2).withMaxSteps(60);
  static NDManager manager;
  static TrainingData train;
  static float[][] straight;

  @TempDir Path tmp;

  @BeforeAll
  static void load() throws Exception {
    MnistDataset.Splits splits = MnistDataset.load(TestData.fashionSmall().toString(), null);
    manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    train = TrainingData.of(splits.train(), manager);
    straight = parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG, 0, 1, GradientSync.NONE), 60);
  }

  @AfterAll
  static void close() {
    manager.close();
  }

  /** Trains, checks the global step count, returns the parameters and closes the model. */
  static float[][] parameters(TrainingLoop loop, long expectedSteps) throws Exception {
    TrainingLoop.Result r = loop.train(train);
    try (Model m = r.model()) {
      assertEquals(expectedSteps, r.steps());
      var ps = r.block().getParameters();
      float[][] out = new float[ps.size()][];
      for (int i = 0; i < ps.size(); i++) out[i] = ps.get(i).getValue().getArray().toFloatArray();
      return out;
    }
  }

  static void assertParametersEqual(float[][] expected, float[][] actual, float tolerance) {
    assertEquals(expected.length, actual.length);
    for (int i = 0; i < expected.length; i++) assertArrayEquals(expected[i], actual[i], tolerance, "parameter " + i);
  }

  CheckpointWriter writer(Path jobDir, int keep, List<String> logs) {
    return new CheckpointWriter(ArtifactStore.forRoot(jobDir.toUri()), jobDir.resolve("checkpoints").toUri(), keep,
        new CheckpointWriter.Listener() {
          @Override
          public void onLog(String level, String message) {
            logs.add(level + " " + message);
          }
        });
  }

  @Test
  void resumingMidEpochContinuesExactly() throws Exception {
    Path job = tmp.resolve("job-a");
    List<String> logs = new CopyOnWriteArrayList<>();
    try (CheckpointWriter w = writer(job, 5, logs)) {
      // interrupted after 20 steps (max_steps), checkpointing every 8: 8, 16, then 20 as the final one
      parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG.withMaxSteps(20), 0, 1, GradientSync.NONE)
          .checkpoints(w, 8), 20);
    }
    assertTrue(logs.stream().anyMatch(l -> l.contains("step-00000020")), logs.toString());
    // the job folder means its newest complete checkpoint
    Checkpoint c = Checkpoints.load(Checkpoints.resolve(job.toString()));
    assertEquals(job.resolve("checkpoints/step-00000020").toUri(), c.uri());
    assertEquals(new CheckpointMetadata.Position(20, 1, 20, 47, false, 20 * 64), c.position());
    assertEquals(8, c.metadata().tensors().size()); // 2 layers' weights and biases, then their momentum
    List<String> lines = new ArrayList<>();
    float[][] resumed = parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG, 0, 1, GradientSync.NONE)
        .resumeFrom(c).listener(new TrainingLoop.Listener() {
          @Override
          public void onLog(String message) {
            lines.add(message);
          }
        }), 60);
    assertParametersEqual(straight, resumed, 1e-6f);
    assertTrue(lines.contains("resumed from " + c.uri() + " at epoch 1 sample 1280 (step 20 in the epoch, global step 20)"), lines.toString());
  }

  @Test
  void resumingAtAnEpochEndStartsTheNextEpoch() throws Exception {
    Path job = tmp.resolve("job-b");
    List<String> logs = new CopyOnWriteArrayList<>();
    try (CheckpointWriter w = writer(job, 3, logs)) {
      // epoch end at 47, then the final one at 50 (max_steps)
      parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG.withMaxSteps(50), 0, 1, GradientSync.NONE)
          .checkpoints(w, 0), 50);
    }
    Checkpoint end = Checkpoints.load(job.resolve("checkpoints/step-00000047").toUri());
    assertEquals(new CheckpointMetadata.Position(47, 1, 47, 47, true, 3000), end.position());
    assertEquals(2, end.position().resumeEpoch());
    assertEquals(0, end.position().resumeStepInEpoch());
    assertParametersEqual(straight, parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG, 0, 1,
        GradientSync.NONE).resumeFrom(end), 60), 1e-6f);

    Checkpoint last = Checkpoints.load(Checkpoints.resolve(job.resolve("checkpoints").toString()));
    assertEquals(new CheckpointMetadata.Position(50, 2, 3, 47, false, 3 * 64), last.position());
    assertParametersEqual(straight, parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG, 0, 1,
        GradientSync.NONE).resumeFrom(last), 60), 1e-6f);
  }

  /** Same global batch (1 x 64 -> 2 x 32): the position in the epoch maps exactly. */
  @Test
  void resumingOnTwoRanksWithTheSameGlobalBatch() throws Exception {
    Path job = tmp.resolve("job-c");
    try (CheckpointWriter w = writer(job, 3, new ArrayList<>())) {
      parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG.withMaxSteps(30), 0, 1, GradientSync.NONE)
          .checkpoints(w, 0), 30);
    }
    Checkpoint c = Checkpoints.load(Checkpoints.resolve(job.toString()));
    TrainingLoopTest.InMemoryAllReduce allReduce = new TrainingLoopTest.InMemoryAllReduce(2);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<float[][]>> ranks = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        int rank = r;
        ranks.add(pool.submit(() -> parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG.withBatchSize(32),
            rank, 2, allReduce.forRank(rank)).resumeFrom(c), 60)));
      }
      float[][] r0 = ranks.get(0).get();
      assertParametersEqual(r0, ranks.get(1).get(), 0f);
      assertParametersEqual(straight, r0, 1e-6f); // measured: 9e-8 (the all-reduce sums in another order)
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void incompatibleJobsFailClearly() throws Exception {
    Path job = tmp.resolve("job-d");
    try (CheckpointWriter w = writer(job, 3, new ArrayList<>())) {
      parameters(new TrainingLoop(ModelDefinitions.get("mlp"), HP, CFG.withMaxSteps(5), 0, 1, GradientSync.NONE)
          .checkpoints(w, 0), 5);
    }
    Checkpoint c = Checkpoints.load(Checkpoints.resolve(job.toString()));
    // (a different batch size or world size is fine: the checkpoint's position is a sample offset)
    CheckpointException e;
    e = assertThrows(CheckpointException.class, () -> new TrainingLoop(ModelDefinitions.get("mlp"),
        Map.of("hidden", "16"), CFG, 0, 1, GradientSync.NONE).resumeFrom(c).train(train));
    assertTrue(e.getMessage().contains("(32, 784)") && e.getMessage().contains("(16, 784)"), e.getMessage());
    e = assertThrows(CheckpointException.class, () -> new TrainingLoop(ModelDefinitions.get("cnn"), Map.of(), CFG, 0, 1,
        GradientSync.NONE).resumeFrom(c).train(train));
    assertTrue(e.getMessage().contains("algorithm 'mlp' in the checkpoint, 'cnn' in the job"), e.getMessage());
    TrainingConfig otherSeed = new TrainingConfig(2, 64, 0.05f, 0.9f, 7, 60, 0, 1);
    e = assertThrows(CheckpointException.class, () -> new TrainingLoop(ModelDefinitions.get("mlp"), HP, otherSeed, 0, 1,
        GradientSync.NONE).resumeFrom(c).train(train));
    assertTrue(e.getMessage().contains("seed 0 in the checkpoint, 7 in the job"), e.getMessage());
    assertFalse(e.getMessage().isBlank());
  }
}

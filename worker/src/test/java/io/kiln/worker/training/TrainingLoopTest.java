package io.kiln.worker.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import io.kiln.worker.TestData;
import io.kiln.worker.data.MnistDataset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class TrainingLoopTest {
  static MnistDataset.Splits splits;
  static NDManager manager;
  static TrainingData train;
  static TrainingData test;

  @BeforeAll
  static void load() throws Exception {
    splits = MnistDataset.load(TestData.fashionSmall().toString(), null);
    manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    train = TrainingData.of(splits.train(), manager);
    test = TrainingData.of(splits.test(), manager);
  }

  @AfterAll
  static void close() {
    manager.close();
  }

  @Test
  void mlpLearnsFashionMnistSubset() throws Exception {
    List<String> logs = new ArrayList<>();
    List<TrainingLoop.Progress> progress = new ArrayList<>();
    TrainingConfig cfg = TrainingConfig.defaults().withEpochs(3);
    TrainingLoop.Result r = new TrainingLoop(ModelDefinitions.get("mlp"), Map.of(), cfg, 0, 1, GradientSync.NONE)
        .listener(new TrainingLoop.Listener() {
          @Override
          public void onLog(String message) {
            logs.add(message);
          }

          @Override
          public void onProgress(TrainingLoop.Progress p) {
            progress.add(p);
          }
        })
        .train(train);
    try (Model model = r.model()) {
      assertEquals(3 * 47, r.steps()); // 46 full steps and a last one of 56 samples per epoch
      assertEquals(3, r.epochsCompleted());
      assertEquals(3, r.epochsVerified(), "each epoch used its 3000 samples exactly once");
      assertEquals(0, r.accountingErrors());
      assertNull(r.stoppedBy());
      assertTrue(r.trainLoss() < 0.9, "train loss " + r.trainLoss());
      assertTrue(r.samplesPerSec() > 0);
      double acc = TrainingLoop.accuracy(r.block(), r.inputShape(), test, null);
      assertTrue(acc > 0.6, "test accuracy " + acc);
      TrainingLoop.Progress last = progress.get(progress.size() - 1);
      assertEquals(r.steps(), last.step());
      assertEquals(r.steps(), last.totalSteps());
      assertEquals(3, last.epoch());
      assertTrue(logs.stream().anyMatch(l -> l.matches("epoch 3/3 step 47/47 loss \\d+\\.\\d+ \\d+ samples/s")),
          String.join("\n", logs));
    }
  }

  @Test
  void sameSeedSameModel() throws Exception {
    TrainingConfig cfg = TrainingConfig.defaults().withMaxSteps(5);
    float[] a = firstWeights(cfg);
    float[] b = firstWeights(cfg);
    assertArrayEquals(a, b);
  }

  private static float[] firstWeights(TrainingConfig cfg) throws Exception {
    TrainingLoop.Result r = new TrainingLoop(ModelDefinitions.get("mlp"), Map.of("hidden", "32"), cfg, 0, 1,
        GradientSync.NONE).train(train);
    try (Model m = r.model()) {
      return r.block().getParameters().get(0).getValue().getArray().toFloatArray();
    }
  }

  @Test
  void maxStepsStopsTraining() throws Exception {
    TrainingLoop.Result r = new TrainingLoop(ModelDefinitions.get("mlp"), Map.of("hidden", "64"),
        TrainingConfig.defaults().withEpochs(5).withMaxSteps(7), 0, 1, GradientSync.NONE).train(train);
    try (Model m = r.model()) {
      assertEquals(7, r.steps());
      assertEquals("max_steps", r.stoppedBy());
      assertEquals(0, r.epochsCompleted());
    }
  }

  @Test
  void cnnTrains() throws Exception {
    TrainingLoop.Result r = new TrainingLoop(ModelDefinitions.get("cnn"), Map.of(),
        TrainingConfig.defaults().withMaxSteps(25).withThreads(2), 0, 1, GradientSync.NONE).train(train);
    try (Model m = r.model()) {
      assertEquals(25, r.steps());
      double acc = TrainingLoop.accuracy(r.block(), r.inputShape(), test, null);
      assertTrue(acc > 0.3, "cnn accuracy after 25 steps " + acc);
    }
  }

  @Test
  void stopSignalStopsBetweenSteps() {
    StopSignal stop = new StopSignal();
    stop.stop("user asked");
    TaskStoppedException e = assertThrows(TaskStoppedException.class,
        () -> new TrainingLoop(ModelDefinitions.get("mlp"), Map.of(), TrainingConfig.defaults(), 0, 1,
            GradientSync.NONE).stopSignal(stop).train(train));
    assertEquals("user asked", e.getMessage());
  }

  @Test
  void unknownAlgorithmListsKnownOnes() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelDefinitions.get("resnet"));
    assertEquals("unknown algorithm 'resnet' (known: cnn, mlp)", e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> ModelDefinitions.get("mlp").build(Map.of("hidden", "12,x"), 10));
    assertTrue(e.getMessage().startsWith("hyperparameter hidden"), e.getMessage());
  }

  @Test
  void tooSmallDatasetFailsClearly() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new TrainingLoop(ModelDefinitions.get("mlp"), Map.of(), TrainingConfig.defaults().withBatchSize(2000), 0,
            2, GradientSync.NONE).train(train));
    assertTrue(e.getMessage().contains("fewer than one global batch"), e.getMessage());
  }

  /**
   * Two ranks in one JVM, averaging gradients through an in-memory barrier: the hook is called with
   * the same parameter layout on each rank and both end with identical weights.
   */
  @Test
  void dataParallelRanksStayInSync() throws Exception {
    int world = 2;
    InMemoryAllReduce allReduce = new InMemoryAllReduce(world);
    TrainingConfig cfg = TrainingConfig.defaults().withEpochs(1).withBatchSize(32);
    ExecutorService pool = Executors.newFixedThreadPool(world);
    try {
      List<Future<TrainingLoop.Result>> results = new ArrayList<>();
      for (int rank = 0; rank < world; rank++) {
        int r = rank;
        results.add(pool.submit(() -> new TrainingLoop(ModelDefinitions.get("mlp"), Map.of("hidden", "64"), cfg, r,
            world, allReduce.forRank(r)).train(train)));
      }
      TrainingLoop.Result r0 = results.get(0).get();
      TrainingLoop.Result r1 = results.get(1).get();
      try (Model m0 = r0.model(); Model m1 = r1.model()) {
        assertEquals(47, r0.steps()); // ceil(3000 / (32 * 2)): the last step splits 56 samples 28 + 28
        assertEquals(r0.steps(), r1.steps());
        var p0 = r0.block().getParameters();
        var p1 = r1.block().getParameters();
        for (int i = 0; i < p0.size(); i++) {
          assertArrayEquals(p0.get(i).getValue().getArray().toFloatArray(),
              p1.get(i).getValue().getArray().toFloatArray(), 1e-6f, p0.get(i).getKey());
        }
        double acc = TrainingLoop.accuracy(r0.block(), r0.inputShape(), test, null);
        assertTrue(acc > 0.6, "data-parallel accuracy " + acc);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  /** Gradient averaging across threads of one JVM (a stand-in collective for tests). */
  static final class InMemoryAllReduce {
    private final int world;
    private final CyclicBarrier barrier;
    private final float[][][] contributions;

    InMemoryAllReduce(int world) {
      this.world = world;
      this.barrier = new CyclicBarrier(world);
      this.contributions = new float[world][][];
    }

    GradientSync forRank(int rank) {
      return (NDList grads, long step) -> {
        float[][] mine = new float[grads.size()][];
        for (int i = 0; i < grads.size(); i++) mine[i] = grads.get(i).toFloatArray();
        contributions[rank] = mine;
        barrier.await();
        for (int i = 0; i < grads.size(); i++) {
          float[] avg = new float[mine[i].length];
          for (int r = 0; r < world; r++) {
            float[] c = contributions[r][i];
            for (int k = 0; k < avg.length; k++) avg[k] += c[k];
          }
          for (int k = 0; k < avg.length; k++) avg[k] /= world;
          NDArray g = grads.get(i);
          try (NDArray src = g.getManager().create(avg, g.getShape())) {
            g.muli(0).addi(src);
          }
        }
        barrier.await();
      };
    }
  }
}

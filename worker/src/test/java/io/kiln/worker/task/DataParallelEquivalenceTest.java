package io.kiln.worker.task;

import static org.junit.jupiter.api.Assertions.*;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;
import io.kiln.worker.TestData;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.training.GradientSync;
import io.kiln.worker.training.ModelDefinitions;
import io.kiln.worker.training.TrainingConfig;
import io.kiln.worker.training.TrainingData;
import io.kiln.worker.training.TrainingLoop;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Data parallelism is exact: two ranks with batch b, averaging gradients over the real TCP ring,
 * end with the same parameters as one rank with batch 2b after the same steps.
 */
class DataParallelEquivalenceTest {
  static NDManager manager;
  static TrainingData train;

  @BeforeAll
  static void load() throws Exception {
    MnistDataset.Splits splits = MnistDataset.load(TestData.fashionSmall().toString(), null);
    manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    train = TrainingData.of(splits.train(), manager);
  }

  @AfterAll
  static void close() {
    manager.close();
  }

  @Test
  void twoRanksWithBatchBEqualOneRankWithBatch2B() throws Exception {
    int steps = 20;
    Map<String, String> hp = Map.of("hidden", "64");
    TrainingConfig single = TrainingConfig.defaults().withBatchSize(64).withMaxSteps(steps);
    TrainingConfig perRank = TrainingConfig.defaults().withBatchSize(32).withMaxSteps(steps);

    TrainingLoop.Result reference = new TrainingLoop(ModelDefinitions.get("mlp"), hp, single, 0, 1, GradientSync.NONE)
        .train(train);

    // Two ranks in this JVM, each with its own ring endpoint on loopback.
    List<ServerSocketChannel> listeners = new ArrayList<>();
    List<String> addresses = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      ServerSocketChannel l = RingCollective.listen("127.0.0.1:0", CollectiveOptions.defaults());
      listeners.add(l);
      addresses.add("127.0.0.1:" + ((InetSocketAddress) l.getLocalAddress()).getPort());
    }
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<TrainingLoop.Result>> futures = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        int rank = r;
        futures.add(pool.submit(() -> {
          RingCollective ring = RingCollective.open(rank, addresses, CollectiveOptions.defaults(), listeners.get(rank));
          return new TrainingLoop(ModelDefinitions.get("mlp"), hp, perRank, rank, 2,
              new CollectiveGradientSync(ring, 64 * 1024)) // small buckets: several all-reduces per step
              .train(train);
        }));
      }
      TrainingLoop.Result r0 = futures.get(0).get();
      TrainingLoop.Result r1 = futures.get(1).get();
      try (Model m = reference.model(); Model m0 = r0.model(); Model m1 = r1.model()) {
        assertEquals(steps, r0.steps());
        var ref = reference.block().getParameters();
        var p0 = r0.block().getParameters();
        var p1 = r1.block().getParameters();
        for (int i = 0; i < ref.size(); i++) {
          float[] a = ref.get(i).getValue().getArray().toFloatArray();
          float[] b = p0.get(i).getValue().getArray().toFloatArray();
          float[] c = p1.get(i).getValue().getArray().toFloatArray();
          assertArrayEquals(b, c, 0f, "ranks hold identical parameters: " + ref.get(i).getKey());
          assertArrayEquals(a, b, 2e-5f, "2 x batch 32 equals 1 x batch 64: " + ref.get(i).getKey());
        }
        assertTrue(r0.commMsPerStep() > 0, "communication was measured");
      }
    } finally {
      pool.shutdownNow();
    }
  }
}

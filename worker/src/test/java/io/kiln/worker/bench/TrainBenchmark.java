package io.kiln.worker.bench;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.worker.checkpoint.CheckpointWriter;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.training.GradientSync;
import io.kiln.worker.training.ModelDefinitions;
import io.kiln.worker.training.TrainingConfig;
import io.kiln.worker.training.TrainingData;
import io.kiln.worker.training.TrainingLoop;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Single-worker throughput and accuracy on a full data set (not a unit test). Usage, from the repo root
 * after {@code mvn -q -B -o -pl worker install}:
 *
 * <pre>
 * java -cp worker/target/test-classes:worker/target/classes:$(cat worker/target/classpath.txt) \
 *   -DDJL_CACHE_DIR=$PWD/.cache/djl -Dai.djl.offline=true \
 *   io.kiln.worker.bench.TrainBenchmark /usr/share/datasets/fashion-mnist mlp epochs=1 batch_size=64 threads=1
 * </pre>
 *
 * <p>{@code checkpoint_every=K} (K >= 1) also checkpoints every K steps and at each epoch end into a
 * temporary folder (deleted afterwards) and prints a {@code CHECKPOINTS} line: how many were written
 * or skipped, the snapshot copy on the training thread and the background write.
 */
public final class TrainBenchmark {
  public static void main(String[] args) throws Exception {
    String dir = args.length > 0 ? args[0] : "/usr/share/datasets/fashion-mnist";
    String algorithm = args.length > 1 ? args[1] : "mlp";
    Map<String, String> hp = new HashMap<>();
    for (int i = 2; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      hp.put(kv[0], kv[1]);
    }
    int threads = Integer.parseInt(hp.getOrDefault("threads", "1"));
    TrainingConfig cfg = new TrainingConfig(Integer.parseInt(hp.getOrDefault("epochs", "1")),
        Integer.parseInt(hp.getOrDefault("batch_size", "64")),
        Float.parseFloat(hp.getOrDefault("learning_rate", "0.05")),
        Float.parseFloat(hp.getOrDefault("momentum", "0.9")), Long.parseLong(hp.getOrDefault("seed", "0")),
        Long.parseLong(hp.getOrDefault("max_steps", "0")), 0, threads);
    long t0 = System.nanoTime();
    MnistDataset.Splits splits = MnistDataset.load(dir, null);
    long t1 = System.nanoTime();
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      TrainingData train = TrainingData.of(splits.train(), m);
      TrainingData test = TrainingData.of(splits.test(), m);
      long t2 = System.nanoTime();
      long cpu0 = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
      long every = Long.parseLong(hp.getOrDefault("checkpoint_every", "0"));
      java.nio.file.Path ckDir = every > 0 ? java.nio.file.Files.createTempDirectory("kiln-bench-ck-") : null;
      CheckpointWriter writer = every > 0 ? new CheckpointWriter(ArtifactStore.forRoot(ckDir.toUri()),
          ckDir.resolve("checkpoints").toUri(), 3, new CheckpointWriter.Listener() {
            @Override
            public void onLog(String level, String message) {
              if (!"INFO".equals(level)) System.out.println(level + " " + message);
            }
          }) : null;
      TrainingLoop.Result r;
      try {
        r = new TrainingLoop(ModelDefinitions.get(algorithm), hp, cfg, 0, 1, GradientSync.NONE)
            .listener(new TrainingLoop.Listener() {
              @Override
              public void onLog(String message) {
                System.out.println(message);
              }
            })
            .checkpoints(writer, every)
            .train(train);
      } finally {
        if (writer != null) {
          writer.close();
          CheckpointWriter.Stats st = writer.stats();
          System.out.printf(Locale.ROOT, "CHECKPOINTS every=%d written=%d skipped=%d failed=%d snapshot_ms_mean=%.3f "
              + "snapshot_ms_max=%.3f write_ms_mean=%.1f%n", every, st.written(), st.skipped(), st.failed(),
              st.meanSnapshotMs(), st.maxSnapshotMs(), st.meanWriteMs());
          try (var files = java.nio.file.Files.walk(ckDir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
          }
        }
      }
      try (Model model = r.model()) {
        long t3 = System.nanoTime();
        long cpu1 = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
        double acc = TrainingLoop.accuracy(r.block(), r.inputShape(), test, null);
        long t4 = System.nanoTime();
        System.out.printf(Locale.ROOT,
            "RESULT algorithm=%s epochs=%d batch=%d threads=%d steps=%d samples/s=%.0f train_s=%.2f train_cpu_s=%.2f "
                + "ms/step=%.3f train_loss=%.4f test_accuracy=%.4f (read %.2fs, to-ndarray %.2fs, eval %.2fs)%n",
            algorithm, cfg.epochs(), cfg.batchSize(), threads, r.steps(), r.samplesPerSec(), r.trainSeconds(), (cpu1 - cpu0) / 1e9,
            r.computeMsPerStep(), r.trainLoss(), acc, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t4 - t3) / 1e9);
      }
    }
  }
}

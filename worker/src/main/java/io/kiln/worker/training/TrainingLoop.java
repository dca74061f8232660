package io.kiln.worker.training;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Mini-batch SGD with momentum and softmax cross-entropy on DJL's PyTorch engine, shaped for data
 * parallelism: rank {@code rank} of {@code worldSize} trains on its shard of each global batch (see
 * {@link Sharding}) and calls the {@link GradientSync} hook between backward and the optimizer step.
 *
 * <p>The whole split lives in one NDArray; each step gathers its rows by index (no DJL Dataset or
 * Batchifier). Gradients are recorded with PyTorch's thread-local grad mode, not DJL's
 * {@code GradientCollector} (which allows one collector per JVM), so several tasks can train in
 * one worker at the same time.
 *
 * <p>{@link #train} must run on the thread that owns the task: it sets PyTorch's intra-op thread
 * count ({@code threads}; a process-wide setting in libtorch, so concurrent tasks share the last
 * value) and that thread's grad mode. Usage:
 *
 * <pre>{@code
 * try (NDManager data = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
 *   TrainingData train = TrainingData.of(dataset, data);
 *   TrainingLoop.Result r = new TrainingLoop(ModelDefinitions.get("mlp"), hp, cfg, 0, 1, GradientSync.NONE)
 *       .listener(myListener).stopSignal(stop).train(train);
 *   try (Model model = r.model()) { ... }
 * }
 * }</pre>
 */
public final class TrainingLoop {

  /** Called on the training thread; keep it quick (send a message, append to a buffer). */
  public interface Listener {
    /** A human-readable line, e.g. {@code epoch 1/1 step 100/937 loss 0.5300 15234 samples/s}. */
    default void onLog(String message) {}

    /** About once per {@link TrainingLoop#progressIntervalMs(long)} and once at the end. */
    default void onProgress(Progress progress) {}
  }

  /**
   * @param step optimizer steps done (global: every rank steps together)
   * @param loss mean training loss over the steps since the previous report
   * @param samplesPerSec samples per second over all ranks since training started
   */
  public record Progress(long step, long totalSteps, int epoch, int totalEpochs, double loss, double samplesPerSec,
      double computeMsPerStep, double commMsPerStep, long timestampMs) {}

  /**
   * What training produced. The caller owns {@code model} (close it).
   *
   * @param trainLoss mean loss of the last (possibly partial) epoch
   * @param samplesPerSec samples per second over all ranks
   * @param stoppedBy null when all epochs ran, else {@code "max_steps"} or {@code "max_runtime_seconds"}
   */
  public record Result(Model model, Block block, Shape inputShape, long steps, int epochsCompleted, double trainLoss,
      double samplesPerSec, double trainSeconds, double computeMsPerStep, double commMsPerStep, String stoppedBy) {}

  private static final Listener SILENT = new Listener() {};
  /** Steps whose rows are gathered from the data set at once. */
  private static final int CHUNK_STEPS = 32;

  private final ModelDefinition definition;
  private final Map<String, String> hyperparameters;
  private final TrainingConfig config;
  private final int rank;
  private final int worldSize;
  private final GradientSync gradientSync;
  private Listener listener = SILENT;
  private StopSignal stopSignal = new StopSignal();
  private long progressIntervalMs = 1000;

  public TrainingLoop(ModelDefinition definition, Map<String, String> hyperparameters, TrainingConfig config,
      int rank, int worldSize, GradientSync gradientSync) {
    if (worldSize < 1) throw new IllegalArgumentException("world size must be >= 1, got " + worldSize);
    if (rank < 0 || rank >= worldSize) {
      throw new IllegalArgumentException("rank " + rank + " outside 0.." + (worldSize - 1));
    }
    this.definition = definition;
    this.hyperparameters = Map.copyOf(hyperparameters);
    this.config = config;
    this.rank = rank;
    this.worldSize = worldSize;
    this.gradientSync = gradientSync == null ? GradientSync.NONE : gradientSync;
  }

  public TrainingLoop listener(Listener l) {
    this.listener = l == null ? SILENT : l;
    return this;
  }

  public TrainingLoop stopSignal(StopSignal s) {
    this.stopSignal = s;
    return this;
  }

  public TrainingLoop progressIntervalMs(long ms) {
    this.progressIntervalMs = ms;
    return this;
  }

  /**
   * Builds the model and trains it on {@code data}.
   *
   * @throws TaskStoppedException if the stop signal was raised (the model is closed)
   * @throws IllegalArgumentException if the data is too small for one global batch, or a hyperparameter is bad
   */
  public Result train(TrainingData data) throws Exception {
    int n = data.size();
    int batch = config.batchSize();
    int stepsPerEpoch = Sharding.stepsPerEpoch(n, batch, worldSize);
    if (stepsPerEpoch == 0) {
      throw new IllegalArgumentException("the training set has " + n + " samples, fewer than one global batch ("
          + "batch_size " + batch + " x " + worldSize + " workers)");
    }
    long totalSteps = (long) stepsPerEpoch * config.epochs();
    if (config.maxSteps() > 0) totalSteps = Math.min(totalSteps, config.maxSteps());

    JniUtils.setNumThreads(config.threads());
    JniUtils.setGradMode(false);

    Shape sampleShape = definition.inputShape(data.rows(), data.cols());
    Shape batchShape = new Shape(batch).addAll(sampleShape);
    Block block = definition.build(hyperparameters, data.numClasses());
    block.setInitializer(new SeededUniformInitializer(config.seed()), Parameter.Type.WEIGHT);
    Model model = Model.newInstance("model", Device.cpu(), "PyTorch");
    boolean ok = false;
    try (GradientSync sync = gradientSync) {
      model.setBlock(block);
      block.initialize(model.getNDManager(), DataType.FLOAT32, batchShape);
      List<Pair<String, Parameter>> params = new ArrayList<>();
      for (Pair<String, Parameter> p : block.getParameters()) {
        if (p.getValue().requiresGradient()) params.add(p);
      }
      Optimizer optimizer = Optimizer.sgd()
          .setLearningRateTracker(Tracker.fixed(config.learningRate()))
          .optMomentum(config.momentum())
          .build();
      NDList parameterArrays = new NDList(params.size());
      for (Pair<String, Parameter> p : params) parameterArrays.add(p.getValue().getArray());
      sync.start(parameterArrays);
      ParameterStore parameterStore = new ParameterStore(model.getNDManager(), false);
      NDManager dataManager = data.features().getManager();

      long started = System.nanoTime();
      long deadline = config.maxRuntimeSeconds() > 0 ? started + config.maxRuntimeSeconds() * 1_000_000_000L : Long.MAX_VALUE;
      long lastReport = started;
      double computeNanos = 0;
      double commNanos = 0;
      double windowLoss = 0;
      int windowSteps = 0;
      double epochLoss = 0;
      int epochSteps = 0;
      long step = 0;
      int epochsCompleted = 0;
      int epoch = 0;
      String stoppedBy = null;
      listener.onLog(String.format(Locale.ROOT, "training %s on %d samples: %d epoch(s) of %d steps, batch %d x %d rank(s), "
          + "lr %s, momentum %s, %d thread(s)", definition.name(), n, config.epochs(), stepsPerEpoch, batch, worldSize,
          config.learningRate(), config.momentum(), config.threads()));

      training:
      for (epoch = 1; epoch <= config.epochs(); epoch++) {
        epochLoss = 0;
        epochSteps = 0;
        // This rank's rows of the whole epoch, in step order, gathered CHUNK_STEPS steps at a time
        // (bounded memory, cache-friendly); each step then takes a view of its rows.
        long[] epochIndex = Sharding.epochShard(Sharding.permutation(n, config.seed(), epoch), stepsPerEpoch, batch, rank,
            worldSize);
        try (NDManager epochManager = dataManager.newSubManager()) {
          NDManager chunkManager = null;
          NDArray xs = null;
          NDArray ys = null;
          int chunkStart = 0;
          for (int s = 0; s < stepsPerEpoch; s++) {
            if (step >= totalSteps) {
              stoppedBy = "max_steps";
              break training;
            }
            if (System.nanoTime() >= deadline) {
              stoppedBy = "max_runtime_seconds";
              break training;
            }
            stopSignal.check();
            long t0 = System.nanoTime();
            float lossValue;
            NDList grads = new NDList(params.size());
            long commStart;
            if (s % CHUNK_STEPS == 0) {
              if (chunkManager != null) chunkManager.close();
              chunkManager = epochManager.newSubManager();
              chunkStart = s;
              int steps = Math.min(CHUNK_STEPS, stepsPerEpoch - s);
              NDArray index = chunkManager.create(
                  Arrays.copyOfRange(epochIndex, s * batch, (s + steps) * batch));
              xs = data.features().get(index);
              xs.attach(chunkManager);
              ys = data.labels().get(index);
              ys.attach(chunkManager);
            }
            try (NDManager stepManager = chunkManager.newSubManager()) {
              NDIndex rows = new NDIndex().addSliceDim((long) (s - chunkStart) * batch, (long) (s - chunkStart + 1) * batch);
              NDArray x = xs.get(rows);
              x.attach(stepManager);
              NDArray y = ys.get(rows);
              y.attach(stepManager);
              if (sampleShape.dimension() != 1) x = x.reshape(batchShape);
              JniUtils.setGradMode(true);
              try {
                NDArray logits = block.forward(parameterStore, new NDList(x), true).singletonOrThrow();
                NDArray loss = crossEntropy(logits, y);
                lossValue = loss.getFloat();
                JniUtils.backward((PtNDArray) loss, (PtNDArray) stepManager.ones(loss.getShape()), false, false);
              } finally {
                JniUtils.setGradMode(false);
              }
              for (Pair<String, Parameter> p : params) grads.add(p.getValue().getArray().getGradient());
              commStart = System.nanoTime();
              sync.sync(grads, step);
              long commEnd = System.nanoTime();
              commNanos += commEnd - commStart;
              for (int i = 0; i < params.size(); i++) {
                Pair<String, Parameter> p = params.get(i);
                optimizer.update(p.getKey(), p.getValue().getArray(), grads.get(i));
              }
              computeNanos += (commStart - t0) + (System.nanoTime() - commEnd);
            } finally {
              for (NDArray g : grads) g.close();
            }
            if (Float.isNaN(lossValue) || Float.isInfinite(lossValue)) {
              throw new ArithmeticException("training diverged: loss is " + lossValue + " at step " + (step + 1)
                  + " (try a smaller learning_rate)");
            }
            step++;
            windowLoss += lossValue;
            windowSteps++;
            epochLoss += lossValue;
            epochSteps++;
            long now = System.nanoTime();
            if (now - lastReport >= progressIntervalMs * 1_000_000L) {
              report(step, totalSteps, epoch, stepsPerEpoch, s + 1, windowLoss / windowSteps, started, now,
                  computeNanos, commNanos);
              lastReport = now;
              windowLoss = 0;
              windowSteps = 0;
            }
          }
        }
        epochsCompleted = epoch;
      }
      long ended = System.nanoTime();
      int lastEpoch = Math.min(epoch, config.epochs());
      double lastLoss = windowSteps > 0 ? windowLoss / windowSteps : (epochSteps > 0 ? epochLoss / epochSteps : Double.NaN);
      int stepInEpoch = epochSteps;
      report(step, totalSteps, lastEpoch, stepsPerEpoch, stepInEpoch, lastLoss, started, ended, computeNanos, commNanos);
      double seconds = (ended - started) / 1e9;
      double sps = seconds > 0 ? step * (double) batch * worldSize / seconds : 0;
      if (stoppedBy != null) {
        listener.onLog("stopped training after " + step + " step(s): " + stoppedBy + " reached");
      }
      Result r = new Result(model, block, sampleShape, step, epochsCompleted,
          epochSteps > 0 ? epochLoss / epochSteps : Double.NaN, sps, seconds,
          step > 0 ? computeNanos / step / 1e6 : 0, step > 0 ? commNanos / step / 1e6 : 0, stoppedBy);
      ok = true;
      return r;
    } finally {
      if (!ok) model.close();
    }
  }

  private void report(long step, long totalSteps, int epoch, int stepsPerEpoch, int stepInEpoch, double loss,
      long started, long now, double computeNanos, double commNanos) {
    double seconds = (now - started) / 1e9;
    double sps = seconds > 0 ? step * (double) config.batchSize() * worldSize / seconds : 0;
    listener.onLog(String.format(Locale.ROOT, "epoch %d/%d step %d/%d loss %.4f %.0f samples/s", epoch,
        config.epochs(), stepInEpoch, stepsPerEpoch, loss, sps));
    listener.onProgress(new Progress(step, totalSteps, epoch, config.epochs(), loss, sps,
        step > 0 ? computeNanos / step / 1e6 : 0, step > 0 ? commNanos / step / 1e6 : 0, System.currentTimeMillis()));
  }

  /** Mean softmax cross-entropy of {@code logits} (batch, classes) against int64 class labels (batch). */
  static NDArray crossEntropy(NDArray logits, NDArray labels) {
    return logits.logSoftmax(1).gather(labels.reshape(-1, 1), 1).mean().neg();
  }

  /** Fraction of {@code data} the model classifies correctly (forward in inference mode, batches of 1000). */
  public static double accuracy(Block block, Shape sampleShape, TrainingData data, StopSignal stop) {
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try {
      ParameterStore ps = new ParameterStore(data.features().getManager(), false);
      int n = data.size();
      long correct = 0;
      int chunk = 1000;
      for (int start = 0; start < n; start += chunk) {
        if (stop != null) stop.check();
        int end = Math.min(n, start + chunk);
        try (NDManager m = data.features().getManager().newSubManager()) {
          NDArray x = data.features().get(new NDIndex(start + ":" + end));
          x.attach(m);
          if (sampleShape.dimension() != 1) x = x.reshape(new Shape(end - start).addAll(sampleShape));
          NDArray y = data.labels().get(new NDIndex(start + ":" + end));
          y.attach(m);
          NDArray logits = block.forward(ps, new NDList(x), false).singletonOrThrow();
          NDArray pred = logits.argMax(1);
          correct += pred.eq(y).countNonzero().getLong();
        }
      }
      return n == 0 ? 0 : (double) correct / n;
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }
}

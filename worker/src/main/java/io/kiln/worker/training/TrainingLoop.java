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
import ai.djl.util.Pair;
import io.kiln.worker.checkpoint.Checkpoint;
import io.kiln.worker.checkpoint.CheckpointException;
import io.kiln.worker.checkpoint.CheckpointMetadata;
import io.kiln.worker.checkpoint.CheckpointWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Mini-batch SGD with momentum ({@link MomentumSgd}) and softmax cross-entropy on DJL's PyTorch
 * engine, shaped for data parallelism: rank {@code rank} of {@code worldSize} trains on its shard of
 * each global batch (see {@link Sharding}) and calls the {@link GradientSync} hook between backward
 * and the optimizer step.
 *
 * <p>Checkpoints ({@link #checkpoints}): every {@code everySteps} global steps, at each epoch end and
 * when training stops early (max_steps, max_runtime_seconds), the parameters and momentum buffers are
 * copied into the {@link CheckpointWriter}'s host buffer at the step boundary and written in the
 * background. Resume ({@link #resumeFrom}): the checkpoint's parameters and momentum are loaded and
 * training continues at its global step, epoch and step within the epoch, with the same per-epoch
 * permutation and sharding, so the remaining steps see exactly the samples they would have seen.
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
  private CheckpointWriter checkpointWriter;
  private long checkpointEverySteps;
  private Checkpoint resume;

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
   * Takes checkpoints through {@code writer} (null: none; give one to rank 0 only) every
   * {@code everySteps} global steps (0: only at epoch ends), at each epoch end, and at the last step
   * when training stops early. The caller closes the writer (which waits for the last write).
   */
  public TrainingLoop checkpoints(CheckpointWriter writer, long everySteps) {
    if (everySteps < 0) throw new IllegalArgumentException("checkpoint every_steps must be >= 0, got " + everySteps);
    this.checkpointWriter = writer;
    this.checkpointEverySteps = everySteps;
    return this;
  }

  /**
   * Continues from {@code checkpoint} (null: start fresh). {@link #train} checks that it fits this
   * job (see {@link CheckpointMetadata#requireCompatible}) and fails with a {@link CheckpointException}
   * otherwise. {@code max_steps} counts global steps, including those before the checkpoint.
   */
  public TrainingLoop resumeFrom(Checkpoint checkpoint) {
    this.resume = checkpoint;
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
      NDList parameterArrays = new NDList(params.size());
      List<String> names = new ArrayList<>(params.size());
      List<long[]> shapes = new ArrayList<>(params.size());
      for (Pair<String, Parameter> p : params) {
        parameterArrays.add(p.getValue().getArray());
        names.add(p.getKey());
        shapes.add(p.getValue().getArray().getShape().getShape());
      }
      // Its buffers live in a sub-manager of the model's: closed with the model.
      MomentumSgd optimizer = new MomentumSgd(config.learningRate(), config.momentum(), parameterArrays);
      // Where training starts: global step, 1-based epoch, 0-based step index in that epoch.
      long startStep = 0;
      int startEpoch = 1;
      int startStepInEpoch = 0;
      if (resume != null) {
        CheckpointMetadata cm = resume.metadata();
        cm.requireCompatible(resume.uri().toString(), definition.name(), MomentumSgd.NAME, worldSize, batch,
            config.seed(), n, names, shapes);
        CheckpointMetadata.Position pos = cm.position();
        if (pos.stepsPerEpoch() != stepsPerEpoch) {
          throw new CheckpointException("checkpoint " + resume.uri() + " does not fit this job: " + pos.stepsPerEpoch()
              + " steps per epoch in the checkpoint, " + stepsPerEpoch + " in this job");
        }
        for (int i = 0; i < params.size(); i++) {
          MomentumSgd.writeInto(parameterArrays.get(i), resume.tensor(i));
          optimizer.load(i, resume.tensor(params.size() + i));
        }
        startStep = pos.globalStep();
        startEpoch = pos.resumeEpoch();
        startStepInEpoch = pos.resumeStepInEpoch();
        listener.onLog(String.format(Locale.ROOT, "resumed from %s at epoch %d step %d (global step %d)%s",
            resume.uri(), startEpoch, startStepInEpoch, startStep, resumeNotes(cm)));
      }
      NDList checkpointArrays = new NDList(2 * params.size());
      checkpointArrays.addAll(parameterArrays);
      checkpointArrays.addAll(optimizer.buffers());
      if (checkpointWriter != null) {
        Map<String, String> recorded = new TreeMap<>(hyperparameters);
        recorded.putAll(config.asHyperparameters());
        checkpointWriter.begin(CheckpointMetadata.layout(definition.name(), recorded, MomentumSgd.NAME,
            config.learningRate(), config.momentum(), config.epochs(), worldSize, batch, config.seed(), n, names,
            shapes));
      }
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
      long step = startStep;
      long lastCheckpointStep = startStep;
      int epochsCompleted = startEpoch - 1;
      int epoch = startEpoch;
      int stepInEpoch = startStepInEpoch;
      String stoppedBy = null;
      listener.onLog(String.format(Locale.ROOT, "training %s on %d samples: %d epoch(s) of %d steps, batch %d x %d rank(s), "
          + "lr %s, momentum %s, %d thread(s)", definition.name(), n, config.epochs(), stepsPerEpoch, batch, worldSize,
          config.learningRate(), config.momentum(), config.threads()));
      if (startStep >= totalSteps) {
        listener.onLog("nothing left to train: the checkpoint is at global step " + startStep + " of " + totalSteps);
      }

      training:
      for (epoch = startEpoch; epoch <= config.epochs(); epoch++) {
        epochLoss = 0;
        epochSteps = 0;
        int firstStep = epoch == startEpoch ? startStepInEpoch : 0;
        stepInEpoch = firstStep;
        // This rank's rows of the whole epoch, in step order, gathered CHUNK_STEPS steps at a time
        // (bounded memory, cache-friendly); each step then takes a view of its rows.
        long[] epochIndex = Sharding.epochShard(Sharding.permutation(n, config.seed(), epoch), stepsPerEpoch, batch, rank,
            worldSize);
        try (NDManager epochManager = dataManager.newSubManager()) {
          NDManager chunkManager = null;
          NDArray xs = null;
          NDArray ys = null;
          int chunkStart = 0;
          for (int s = firstStep; s < stepsPerEpoch; s++) {
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
            if (xs == null || s % CHUNK_STEPS == 0) {
              // chunks sit on the same grid whether the epoch starts at step 0 or mid-way (resume),
              // so a resumed run computes on exactly the same memory layout as an uninterrupted one
              if (chunkManager != null) chunkManager.close();
              chunkManager = epochManager.newSubManager();
              chunkStart = s - s % CHUNK_STEPS;
              int steps = Math.min(CHUNK_STEPS, stepsPerEpoch - chunkStart);
              NDArray index = chunkManager.create(
                  Arrays.copyOfRange(epochIndex, chunkStart * batch, (chunkStart + steps) * batch));
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
              optimizer.step(parameterArrays, grads);
              // backward accumulates into .grad: clear it for the next step (optimizer.zero_grad())
              for (NDArray w : parameterArrays) JniUtils.zeroGrad((PtNDArray) w);
              computeNanos += (commStart - t0) + (System.nanoTime() - commEnd);
            } finally {
              for (NDArray g : grads) g.close();
            }
            if (Float.isNaN(lossValue) || Float.isInfinite(lossValue)) {
              throw new ArithmeticException("training diverged: loss is " + lossValue + " at step " + (step + 1)
                  + " (try a smaller learning_rate)");
            }
            step++;
            stepInEpoch = s + 1;
            windowLoss += lossValue;
            windowSteps++;
            epochLoss += lossValue;
            epochSteps++;
            if (checkpointWriter != null) {
              boolean epochEnd = stepInEpoch == stepsPerEpoch;
              if (epochEnd || (checkpointEverySteps > 0 && step % checkpointEverySteps == 0)) {
                // the last checkpoint of the run is never skipped: wait for a write still in flight
                boolean last = step >= totalSteps;
                if (checkpointWriter.save(new CheckpointMetadata.Position(step, epoch, stepInEpoch, stepsPerEpoch,
                    epochEnd), checkpointArrays, last)) {
                  lastCheckpointStep = step;
                }
              }
            }
            long now = System.nanoTime();
            if (now - lastReport >= progressIntervalMs * 1_000_000L) {
              report(step, step - startStep, totalSteps, epoch, stepsPerEpoch, stepInEpoch, windowLoss / windowSteps,
                  started, now, computeNanos, commNanos);
              lastReport = now;
              windowLoss = 0;
              windowSteps = 0;
            }
          }
        }
        epochsCompleted = epoch;
      }
      long ended = System.nanoTime();
      long stepsRun = step - startStep;
      int lastEpoch = Math.min(epoch, config.epochs());
      if (epoch > config.epochs()) stepInEpoch = stepsPerEpoch;
      if (checkpointWriter != null && stepsRun > 0 && lastCheckpointStep != step) {
        // stopped early (max_steps, max_runtime_seconds) after an uncheckpointed step, or the
        // scheduled checkpoint of the last step was skipped: take the final one now
        int e = stepInEpoch == 0 ? epoch - 1 : epoch;
        int sie = stepInEpoch == 0 ? stepsPerEpoch : stepInEpoch;
        checkpointWriter.save(new CheckpointMetadata.Position(step, e, sie, stepsPerEpoch, sie == stepsPerEpoch),
            checkpointArrays, true);
      }
      double lastLoss = windowSteps > 0 ? windowLoss / windowSteps : (epochSteps > 0 ? epochLoss / epochSteps : Double.NaN);
      report(step, stepsRun, totalSteps, lastEpoch, stepsPerEpoch, stepInEpoch, lastLoss, started, ended, computeNanos,
          commNanos);
      double seconds = (ended - started) / 1e9;
      double sps = seconds > 0 ? stepsRun * (double) batch * worldSize / seconds : 0;
      if (stoppedBy != null) {
        listener.onLog("stopped training after " + step + " step(s): " + stoppedBy + " reached");
      }
      Result r = new Result(model, block, sampleShape, step, epochsCompleted,
          epochSteps > 0 ? epochLoss / epochSteps : Double.NaN, sps, seconds,
          stepsRun > 0 ? computeNanos / stepsRun / 1e6 : 0, stepsRun > 0 ? commNanos / stepsRun / 1e6 : 0, stoppedBy);
      ok = true;
      return r;
    } finally {
      if (!ok) model.close();
    }
  }

  /** What differs between the checkpoint's run and this one (allowed: learning rate, momentum, epochs). */
  private String resumeNotes(CheckpointMetadata cm) {
    List<String> notes = new ArrayList<>();
    if (cm.learningRate() != config.learningRate()) {
      notes.add("learning_rate " + cm.learningRate() + " -> " + config.learningRate());
    }
    if (cm.momentum() != config.momentum()) notes.add("momentum " + cm.momentum() + " -> " + config.momentum());
    if (cm.epochs() != config.epochs()) notes.add("epochs " + cm.epochs() + " -> " + config.epochs());
    if (cm.worldSize() != worldSize) {
      notes.add("world size " + cm.worldSize() + " x batch " + cm.batchSize() + " -> " + worldSize + " x batch "
          + config.batchSize() + " (same global batch)");
    }
    return notes.isEmpty() ? "" : "; changed: " + String.join(", ", notes);
  }

  private void report(long step, long stepsRun, long totalSteps, int epoch, int stepsPerEpoch, int stepInEpoch,
      double loss, long started, long now, double computeNanos, double commNanos) {
    double seconds = (now - started) / 1e9;
    double sps = seconds > 0 ? stepsRun * (double) config.batchSize() * worldSize / seconds : 0;
    String split = worldSize > 1 && step > 0
        ? String.format(Locale.ROOT, " (step %.2f ms: compute %.2f, communication %.2f)",
            (computeNanos + commNanos) / step / 1e6, computeNanos / step / 1e6, commNanos / step / 1e6)
        : "";
    listener.onLog(String.format(Locale.ROOT, "epoch %d/%d step %d/%d loss %.4f %.0f samples/s%s", epoch,
        config.epochs(), stepInEpoch, stepsPerEpoch, loss, sps, split));
    listener.onProgress(new Progress(step, totalSteps, epoch, config.epochs(), loss, sps,
        stepsRun > 0 ? computeNanos / stepsRun / 1e6 : 0, stepsRun > 0 ? commNanos / stepsRun / 1e6 : 0,
        System.currentTimeMillis()));
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

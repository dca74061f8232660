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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
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
      double samplesPerSec, double trainSeconds, double computeMsPerStep, double commMsPerStep, String stoppedBy,
      int rank, int worldSize, int epochsVerified, int accountingErrors) {}

  private static final Listener SILENT = new Listener() {};
  /** Steps whose rows are gathered from the data set at once. */
  private static final int CHUNK_STEPS = 32;

  private final ModelDefinition definition;
  private final Map<String, String> hyperparameters;
  private final TrainingConfig config;
  /** This rank's place; an elastic group changes both between steps. */
  private int rank;
  private int worldSize;
  private int generation;
  private final GradientSync gradientSync;
  private java.nio.ByteBuffer stateBuffer;
  private long checksum;
  private int checksumN = -1;
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
    if (Sharding.stepsPerEpoch(n, batch, worldSize) == 0) {
      throw new IllegalArgumentException("the training set has " + n + " samples, fewer than one global batch ("
          + "batch_size " + batch + " x " + worldSize + " workers)");
    }
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
      Cursor c = new Cursor();
      if (resume != null) resumeInto(c, n, names, shapes, parameterArrays, optimizer);
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
      ElasticSync elastic = sync instanceof ElasticSync e ? e : null;
      if (elastic != null) {
        // Every rank starts from the source rank's state (rank 0 in a new job; a survivor when this
        // rank joins a running job), position and accounting included.
        startGeneration(elastic, c, checkpointArrays, "start", List.of());
      } else {
        sync.start(parameterArrays);
      }
      ParameterStore parameterStore = new ParameterStore(model.getNDManager(), false);
      NDManager dataManager = data.features().getManager();
      long maxSteps = config.maxSteps() > 0 ? config.maxSteps() : Long.MAX_VALUE;

      long started = System.nanoTime();
      long deadline = config.maxRuntimeSeconds() > 0 ? started + config.maxRuntimeSeconds() * 1_000_000_000L : Long.MAX_VALUE;
      long lastReport = started;
      long startStep = c.step;
      long samplesRun = 0;
      double computeNanos = 0;
      double commNanos = 0;
      double windowLoss = 0;
      int windowSteps = 0;
      long lastCheckpointStep = c.step;
      int epochsCompleted = c.epoch - 1;
      String stoppedBy = null;
      listener.onLog(String.format(Locale.ROOT, "training %s on %d samples: %d epoch(s) of %d steps, batch %d x %d rank(s), "
          + "lr %s, momentum %s, %d thread(s)", definition.name(), n, config.epochs(), stepsPerEpoch(n), batch, worldSize,
          config.learningRate(), config.momentum(), config.threads()));
      if (c.epoch > config.epochs() || c.step >= maxSteps) {
        listener.onLog("nothing left to train: the checkpoint is at global step " + c.step);
      }
      int[] permutation = null;
      int permutationEpoch = -1;
      Chunk chunk = null;
      try {
        while (c.epoch <= config.epochs()) {
          if (c.step >= maxSteps) {
            stoppedBy = "max_steps";
            break;
          }
          if (System.nanoTime() >= deadline) {
            stoppedBy = "max_runtime_seconds";
            break;
          }
          stopSignal.check();
          if (elastic != null && elastic.regroupRequested()) {
            chunk = Chunk.close(chunk);
            startGeneration(elastic, c, checkpointArrays, "the coordinator asked for a regroup", List.of());
            continue;
          }
          if (permutationEpoch != c.epoch) {
            permutation = Sharding.permutation(n, config.seed(), c.epoch);
            permutationEpoch = c.epoch;
            chunk = Chunk.close(chunk);
          }
          Sharding.Slice slice = Sharding.slice(c.offset, n, batch, worldSize, rank);
          long t0 = System.nanoTime();
          float lossValue;
          NDList grads = new NDList(params.size());
          long commStart;
          boolean synced = false;
          try (NDManager stepManager = dataManager.newSubManager()) {
            NDArray x;
            NDArray y;
            if (slice.full(batch, worldSize)) {
              if (chunk == null || !chunk.holds(c.epoch, generation, c.offset)) {
                Chunk.close(chunk);
                chunk = Chunk.gather(data, permutation, c.epoch, generation, c.offset, n, batch, worldSize, rank);
              }
              int k = chunk.stepIndex(c.offset);
              NDIndex rows = new NDIndex().addSliceDim((long) k * batch, (long) (k + 1) * batch);
              x = chunk.xs.get(rows);
              y = chunk.ys.get(rows);
            } else {
              // the epoch's last, partial step: rows gathered directly; a rank with no rows of it
              // computes on one row and contributes nothing (weight 0) to keep the collective in step
              long[] idx = new long[Math.max(1, slice.count())];
              for (int i = 0; i < idx.length; i++) {
                idx[i] = permutation[(int) (slice.count() == 0 ? slice.offset() : slice.start() + i)];
              }
              NDArray index = stepManager.create(idx);
              x = data.features().get(index);
              y = data.labels().get(index);
            }
            x.attach(stepManager);
            y.attach(stepManager);
            if (sampleShape.dimension() != 1) x = x.reshape(new Shape(x.getShape().get(0)).addAll(sampleShape));
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
            if (!slice.full(batch, worldSize)) {
              // each rank's gradient is a mean over its rows: weight it so that the ranks' average is
              // the mean over the whole (smaller) global batch
              float weight = (float) slice.count() * worldSize / slice.globalCount();
              for (NDArray g : grads) g.muli(weight);
              if (slice.count() == 0) lossValue = 0;
            }
            commStart = System.nanoTime();
            try {
              sync.sync(grads, c.step);
              synced = true;
            } catch (GroupChangedException e) {
              if (elastic == null) throw e;
              // the step's gradients are dropped: the optimizer has not stepped, so this rank still
              // holds the state of its last completed step
              for (NDArray w : parameterArrays) JniUtils.zeroGrad((PtNDArray) w);
              chunk = Chunk.close(chunk);
              startGeneration(elastic, c, checkpointArrays, e.getMessage(), e.suspects());
            }
            if (synced) {
              long commEnd = System.nanoTime();
              commNanos += commEnd - commStart;
              optimizer.step(parameterArrays, grads);
              // backward accumulates into .grad: clear it for the next step (optimizer.zero_grad())
              for (NDArray w : parameterArrays) JniUtils.zeroGrad((PtNDArray) w);
              computeNanos += (commStart - t0) + (System.nanoTime() - commEnd);
            }
          } finally {
            for (NDArray g : grads) g.close();
          }
          if (!synced) continue;
          if (Float.isNaN(lossValue) || Float.isInfinite(lossValue)) {
            throw new ArithmeticException("training diverged: loss is " + lossValue + " at step " + (c.step + 1)
                + " (try a smaller learning_rate)");
          }
          c.completeStep(slice, permutation, lossValue);
          samplesRun += slice.globalCount();
          windowLoss += lossValue;
          windowSteps++;
          boolean epochEnd = c.offset >= n;
          if (checkpointWriter != null && rank == 0
              && (epochEnd || (checkpointEverySteps > 0 && c.step % checkpointEverySteps == 0))) {
            // the last checkpoint of the run is never skipped: wait for a write still in flight
            boolean last = c.step >= maxSteps || (epochEnd && c.epoch == config.epochs());
            if (checkpointWriter.save(c.position(n, stepsPerEpoch(n), epochEnd), checkpointArrays, last)) {
              lastCheckpointStep = c.step;
            }
          }
          if (epochEnd) {
            accountEpoch(c, n);
            epochsCompleted = c.epoch;
            c.nextEpoch();
          }
          long now = System.nanoTime();
          if (now - lastReport >= progressIntervalMs * 1_000_000L) {
            report(c, n, maxSteps, windowLoss / windowSteps, samplesRun, started, now, computeNanos, commNanos,
                c.step - startStep);
            lastReport = now;
            windowLoss = 0;
            windowSteps = 0;
          }
        }
      } catch (TaskStoppedException e) {
        // where a stopped rank was, for whoever compares it with where its job resumes
        listener.onLog("stopped at global step " + c.step + " (epoch " + c.epoch + ", sample " + c.offset + ")");
        throw e;
      } finally {
        Chunk.close(chunk);
      }
      long ended = System.nanoTime();
      long stepsRun = c.step - startStep;
      if (checkpointWriter != null && rank == 0 && stepsRun > 0 && lastCheckpointStep != c.step) {
        // stopped early (max_steps, max_runtime_seconds) after an uncheckpointed step, or the
        // scheduled checkpoint of the last step was skipped: take the final one now
        checkpointWriter.save(c.position(n, stepsPerEpoch(n), false), checkpointArrays, true);
      }
      double lastLoss = windowSteps > 0 ? windowLoss / windowSteps : c.lastEpochLoss();
      report(c, n, maxSteps, lastLoss, samplesRun, started, ended, computeNanos, commNanos, stepsRun);
      double seconds = (ended - started) / 1e9;
      double sps = seconds > 0 ? samplesRun / seconds : 0;
      if (stoppedBy != null) {
        listener.onLog("stopped training after " + c.step + " step(s): " + stoppedBy + " reached");
      }
      Result r = new Result(model, block, sampleShape, c.step, epochsCompleted, c.lastEpochLoss(), sps, seconds,
          stepsRun > 0 ? computeNanos / stepsRun / 1e6 : 0, stepsRun > 0 ? commNanos / stepsRun / 1e6 : 0, stoppedBy,
          rank, worldSize, c.epochsVerified, c.accountingErrors);
      ok = true;
      return r;
    } finally {
      if (!ok) model.close();
    }
  }

  /** Optimizer steps in an epoch at the current world size (the last one may be partial). */
  private int stepsPerEpoch(int n) {
    long global = (long) config.batchSize() * worldSize;
    return (int) ((n + global - 1) / global);
  }

  private void resumeInto(Cursor c, int n, List<String> names, List<long[]> shapes, NDList parameterArrays,
      MomentumSgd optimizer) throws CheckpointException {
    CheckpointMetadata cm = resume.metadata();
    cm.requireCompatible(resume.uri().toString(), definition.name(), MomentumSgd.NAME, worldSize, config.batchSize(),
        config.seed(), n, names, shapes);
    CheckpointMetadata.Position pos = cm.position();
    int count = names.size();
    for (int i = 0; i < count; i++) {
      MomentumSgd.writeInto(parameterArrays.get(i), resume.tensor(i));
      optimizer.load(i, resume.tensor(count + i));
    }
    c.step = pos.globalStep();
    c.epoch = pos.resumeEpoch();
    if (!pos.epochEnd()) {
      c.offset = pos.hasSampleOffset() ? pos.sampleOffset() : (long) pos.stepInEpoch() * cm.batchSize() * cm.worldSize();
      c.epochSteps = pos.stepInEpoch();
      // the samples before the offset are exactly the permutation's first ones
      int[] perm = Sharding.permutation(n, config.seed(), c.epoch);
      c.epochSamples = c.offset;
      for (int i = 0; i < c.offset; i++) c.epochChecksum += Sharding.sampleHash(perm[i]);
    }
    listener.onLog(String.format(Locale.ROOT, "resumed from %s at epoch %d sample %d (step %d in the epoch, global step %d)%s",
        resume.uri(), c.epoch, c.offset, c.epochSteps, c.step, resumeNotes(cm)));
  }

  /**
   * Joins the next generation of an elastic group (or the first one) and takes the state of its
   * source rank: parameters, momentum, position and accounting. Retries while the group keeps
   * changing; throws when this rank was dropped, stopped, or no group formed in time.
   */
  private void startGeneration(ElasticSync elastic, Cursor c, NDList state, String reason, List<String> suspects)
      throws Exception {
    long t0 = System.nanoTime();
    boolean first = reason.equals("start");
    while (true) {
      stopSignal.check();
      ElasticSync.View v = first && elastic.view() != null ? elastic.view()
          : elastic.regroup(new ElasticSync.StepState(c.step, c.epoch, c.offset), reason, suspects);
      first = false;
      int before = worldSize;
      rank = v.rank();
      worldSize = v.worldSize();
      generation = v.generation();
      try {
        exchangeState(elastic, c, state, v.sourceRank());
      } catch (GroupChangedException e) {
        reason = e.getMessage();
        suspects = e.suspects();
        continue;
      }
      if (!reason.equals("start") || v.generation() > 1) {
        listener.onLog(String.format(Locale.ROOT, "generation %d: rank %d of %d (was %d rank(s)); continuing at epoch %d "
            + "sample %d (global step %d) from rank %d's state after %.2f s (%s)", v.generation(), rank, worldSize,
            before, c.epoch, c.offset, c.step, v.sourceRank(), (System.nanoTime() - t0) / 1e9, reason));
      }
      return;
    }
  }

  /** Copies position, accounting, parameters and momentum from {@code source} to every rank. */
  private void exchangeState(ElasticSync elastic, Cursor c, NDList state, int source) throws GroupChangedException {
    long floats = 0;
    for (NDArray a : state) floats += a.size();
    int bytes = Math.toIntExact(Cursor.HEADER_BYTES + floats * Float.BYTES);
    if (stateBuffer == null || stateBuffer.capacity() < bytes) {
      stateBuffer = ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
    }
    ByteBuffer b = stateBuffer.duplicate().order(ByteOrder.nativeOrder());
    if (rank == source) {
      c.write(b);
      b.position(Cursor.HEADER_BYTES);
      FloatBuffer out = b.asFloatBuffer();
      for (NDArray a : state) out.put(a.toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer());
    }
    elastic.broadcastState(stateBuffer, bytes);
    if (rank != source) {
      b.clear();
      c.read(b);
      b.position(Cursor.HEADER_BYTES);
      FloatBuffer in = b.asFloatBuffer();
      for (NDArray a : state) {
        FloatBuffer src = in.slice();
        src.limit(Math.toIntExact(a.size()));
        MomentumSgd.writeInto(a, src);
        in.position(in.position() + Math.toIntExact(a.size()));
      }
    }
  }

  /** Checks that the epoch used each sample exactly once, from the position's own records. */
  private void accountEpoch(Cursor c, int n) {
    boolean exact = c.epochSamples == n && c.epochChecksum == expectedChecksum(n);
    if (exact) {
      c.epochsVerified++;
      listener.onLog(String.format(Locale.ROOT, "epoch %d: %d of %d samples used, each exactly once (%d steps)",
          c.epoch, c.epochSamples, n, c.epochSteps));
    } else {
      c.accountingErrors++;
      listener.onLog(String.format(Locale.ROOT, "ERROR epoch %d: sample accounting mismatch: %d samples used of %d, "
          + "checksum %s", c.epoch, c.epochSamples, n, c.epochChecksum == expectedChecksum(n) ? "ok" : "differs"));
    }
  }

  private long expectedChecksum(int n) {
    if (checksumN != n) {
      checksum = Sharding.epochChecksum(n);
      checksumN = n;
    }
    return checksum;
  }

  /**
   * Where training stands, and the running epoch's accounting: the part of a rank's state that,
   * with parameters and momentum, a new generation copies from its source rank.
   */
  private static final class Cursor {
    static final int HEADER_BYTES = 64;
    long step;
    int epoch = 1;
    long offset;
    int epochSteps;
    long epochSamples;
    long epochChecksum;
    double epochLoss;
    double lastEpochLoss = Double.NaN;
    int lastEpochSteps;
    int epochsVerified;
    int accountingErrors;

    void completeStep(Sharding.Slice slice, int[] permutation, float loss) {
      for (long i = slice.offset(); i < slice.offset() + slice.globalCount(); i++) {
        epochChecksum += Sharding.sampleHash(permutation[(int) i]);
      }
      epochSamples += slice.globalCount();
      offset += slice.globalCount();
      step++;
      epochSteps++;
      epochLoss += loss;
    }

    void nextEpoch() {
      lastEpochLoss = epochSteps > 0 ? epochLoss / epochSteps : Double.NaN;
      lastEpochSteps = epochSteps;
      epoch++;
      offset = 0;
      epochSteps = 0;
      epochSamples = 0;
      epochChecksum = 0;
      epochLoss = 0;
    }

    double lastEpochLoss() {
      return epochSteps > 0 ? epochLoss / epochSteps : lastEpochLoss;
    }

    CheckpointMetadata.Position position(int n, int stepsPerEpoch, boolean epochEnd) {
      return new CheckpointMetadata.Position(step, epoch, epochSteps, stepsPerEpoch, epochEnd, epochEnd ? n : offset);
    }

    void write(ByteBuffer b) {
      b.putLong(0, step).putLong(8, epoch).putLong(16, offset).putLong(24, epochSteps).putLong(32, epochSamples)
          .putLong(40, epochChecksum).putDouble(48, epochLoss).putInt(56, epochsVerified).putInt(60, accountingErrors);
    }

    void read(ByteBuffer b) {
      step = b.getLong(0);
      epoch = (int) b.getLong(8);
      offset = b.getLong(16);
      epochSteps = (int) b.getLong(24);
      epochSamples = b.getLong(32);
      epochChecksum = b.getLong(40);
      epochLoss = b.getDouble(48);
      epochsVerified = b.getInt(56);
      accountingErrors = b.getInt(60);
    }
  }

  /**
   * This rank's rows of up to {@link #CHUNK_STEPS} consecutive full steps, gathered at once (bounded
   * memory, cache-friendly); each step takes a view. Chunks sit on a grid of whole global batches
   * from the epoch's start (or from where the generation started), so a resumed run computes on
   * exactly the same memory layout as an uninterrupted one.
   */
  private static final class Chunk {
    final int epoch;
    final int generation;
    final long start;
    final long stride;
    final int steps;
    final NDManager manager;
    final NDArray xs;
    final NDArray ys;

    private Chunk(int epoch, int generation, long start, long stride, int steps, NDManager manager, NDArray xs,
        NDArray ys) {
      this.epoch = epoch;
      this.generation = generation;
      this.start = start;
      this.stride = stride;
      this.steps = steps;
      this.manager = manager;
      this.xs = xs;
      this.ys = ys;
    }

    static Chunk gather(TrainingData data, int[] permutation, int epoch, int generation, long offset, int n, int batch,
        int world, int rank) {
      long stride = (long) batch * world;
      long base = offset % stride;
      long start = base + (offset - base) / (CHUNK_STEPS * stride) * (CHUNK_STEPS * stride);
      int steps = (int) Math.min(CHUNK_STEPS, (n - start) / stride);
      long[] idx = new long[steps * batch];
      for (int k = 0; k < steps; k++) {
        long from = start + k * stride + (long) rank * batch;
        for (int i = 0; i < batch; i++) idx[k * batch + i] = permutation[(int) (from + i)];
      }
      NDManager m = data.features().getManager().newSubManager();
      NDArray index = m.create(idx);
      NDArray xs = data.features().get(index);
      xs.attach(m);
      NDArray ys = data.labels().get(index);
      ys.attach(m);
      return new Chunk(epoch, generation, start, stride, steps, m, xs, ys);
    }

    boolean holds(int epoch, int generation, long offset) {
      return this.epoch == epoch && this.generation == generation && offset >= start && (offset - start) % stride == 0
          && (offset - start) / stride < steps;
    }

    int stepIndex(long offset) {
      return (int) ((offset - start) / stride);
    }

    static Chunk close(Chunk c) {
      if (c != null) c.manager.close();
      return null;
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

  private void report(Cursor c, int n, long maxSteps, double loss, long samplesRun, long started, long now,
      double computeNanos, double commNanos, long stepsRun) {
    double seconds = (now - started) / 1e9;
    double sps = seconds > 0 ? samplesRun / seconds : 0;
    String split = worldSize > 1 && stepsRun > 0
        ? String.format(Locale.ROOT, " (step %.2f ms: compute %.2f, communication %.2f)",
            (computeNanos + commNanos) / stepsRun / 1e6, computeNanos / stepsRun / 1e6, commNanos / stepsRun / 1e6)
        : "";
    int perEpoch = stepsPerEpoch(n);
    // steps left at the current world size (it may change in an elastic job)
    long global = (long) config.batchSize() * worldSize;
    long totalSteps = c.step + (n - c.offset + global - 1) / global + (long) (config.epochs() - c.epoch) * perEpoch;
    if (c.offset >= n || c.epoch > config.epochs()) totalSteps = c.step;
    totalSteps = Math.min(totalSteps, maxSteps);
    // right after an epoch ended, report the finished epoch (as "epoch 3/3 step 47/47")
    boolean atBoundary = c.offset == 0 && c.epochSteps == 0 && c.epoch > 1;
    int epoch = atBoundary ? c.epoch - 1 : Math.min(c.epoch, config.epochs());
    int stepInEpoch = atBoundary ? c.lastEpochSteps : c.epochSteps;
    listener.onLog(String.format(Locale.ROOT, "epoch %d/%d step %d/%d loss %.4f %.0f samples/s%s", epoch,
        config.epochs(), stepInEpoch, perEpoch, loss, sps, split));
    listener.onProgress(new Progress(c.step, totalSteps, epoch, config.epochs(), loss, sps,
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

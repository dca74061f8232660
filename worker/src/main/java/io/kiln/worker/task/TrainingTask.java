package io.kiln.worker.task;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Progress;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskCheckpoint;
import io.kiln.worker.checkpoint.Checkpoint;
import io.kiln.worker.checkpoint.CheckpointException;
import io.kiln.worker.checkpoint.CheckpointSettings;
import io.kiln.worker.checkpoint.CheckpointWriter;
import io.kiln.worker.checkpoint.Checkpoints;
import io.kiln.worker.data.DataException;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.javamodel.JarModels;
import io.kiln.worker.training.GradientSync;
import io.kiln.worker.training.ModelArtifacts;
import io.kiln.worker.training.ModelDefinition;
import io.kiln.worker.training.ModelDefinitions;
import io.kiln.worker.training.StopSignal;
import io.kiln.worker.training.TaskStoppedException;
import io.kiln.worker.training.TrainingConfig;
import io.kiln.worker.training.TrainingData;
import io.kiln.worker.training.TrainingLoop;
import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One rank of a training job, start to finish, on the calling thread: validate the spec, load the
 * checkpoint to resume from (if {@code spec.checkpoint.resume_from}), load the data, train (rank 0
 * writes checkpoints to {@code <job folder>/checkpoints/} and reports each one), evaluate, write the
 * model, and report each stage through {@link TaskEvents}.
 * {@link #run()} never throws: every failure becomes one {@code failed} report whose reason says
 * what went wrong (a stop request becomes {@code "stopped: <reason>"}).
 *
 * <p>Only rank 0 evaluates and writes the model and metrics (all ranks hold the same weights); the
 * other ranks report {@code completed} with the same model URI and their training metrics.
 */
public final class TrainingTask implements Runnable {
  private static final Logger log = LoggerFactory.getLogger(TrainingTask.class);

  private final TaskAssignment assignment;
  private final TaskEvents events;
  private final StopSignal stop;
  private final GradientSyncFactory syncFactory;
  private final URI defaultArtifactsRoot;
  private final GroupRendezvous rendezvous;
  /** What the task is doing, for the failure reason (run() runs once, on one thread). */
  private String stage;
  /** Algorithm java: the user's model and its class loader, closed when the task ends. */
  private JarModels.Loaded userModel;

  public TrainingTask(TaskAssignment assignment, TaskEvents events, StopSignal stop, GradientSyncFactory syncFactory,
      URI defaultArtifactsRoot) {
    this(assignment, events, stop, syncFactory, defaultArtifactsRoot, new GroupRendezvous(events, stop));
  }

  public TrainingTask(TaskAssignment assignment, TaskEvents events, StopSignal stop, GradientSyncFactory syncFactory,
      URI defaultArtifactsRoot, GroupRendezvous rendezvous) {
    this.rendezvous = rendezvous;
    this.assignment = assignment;
    this.events = events;
    this.stop = stop;
    this.syncFactory = syncFactory == null ? GradientSyncFactory.SINGLE_RANK_ONLY : syncFactory;
    this.defaultArtifactsRoot = defaultArtifactsRoot;
  }

  @Override
  public void run() {
    stage = "invalid job spec";
    try {
      events.started();
      JobSpec spec = assignment.getSpec();
      int rank = assignment.getRank();
      int world = Math.max(1, assignment.getWorldSize());
      events.info(String.format(Locale.ROOT, "task %s (rank %d of %d) of job %s: algorithm %s, train data %s",
          assignment.getTaskId(), rank, world, assignment.getJobId(), spec.getAlgorithm(),
          spec.getChannelsOrDefault("train", "(none)")));
      java.util.Optional<TaskRunner> runner = TaskRunners.find(spec.getAlgorithm());
      if (runner.isPresent()) {
        stage = spec.getAlgorithm() + " failed";
        TaskRunner.Outcome out = runner.get().run(new TaskRunner.Context(assignment, events, stop, rendezvous, jobUri(),
            modelUri()));
        stop.check();
        events.completed(out.modelUri(), out.metrics());
        return;
      }
      // algorithm java: the user's model class from its jar, in a class loader of its own
      if (JarModels.ALGORITHM.equals(spec.getAlgorithm())) {
        stage = "cannot load the model jar";
        userModel = JarModels.load(spec, events);
      }
      ModelDefinition definition = userModel != null ? userModel.definition() : ModelDefinitions.get(spec.getAlgorithm());
      TrainingConfig config = TrainingConfig.fromSpec(spec);
      CheckpointSettings checkpointing = CheckpointSettings.fromSpec(spec);
      String train = spec.getChannelsOrDefault("train", "");
      if (train.isBlank()) throw new IllegalArgumentException("channels.train is required");
      Map<String, String> hp = new LinkedHashMap<>(definition.defaults());
      hp.putAll(spec.getHyperparametersMap());
      URI modelUri = modelUri();
      URI jobUri = jobUri();

      Checkpoint resume = null;
      if (checkpointing.resumes()) {
        stage = "cannot resume from checkpoint";
        stop.check();
        Checkpoints.Resumption resumption = Checkpoints.resolveForResume(checkpointing.resumeFrom());
        if (!resumption.fallbackReason().isEmpty()) events.warn(resumption.fallbackReason());
        URI from = resumption.uri();
        resume = Checkpoints.load(from);
        var pos = resume.position();
        events.info(String.format(Locale.ROOT, "loaded checkpoint %s (global step %d, epoch %d step %d/%d, %.1f MB)",
            from, pos.globalStep(), pos.epoch(), pos.stepInEpoch(), pos.stepsPerEpoch(),
            resume.metadata().dataBytes() / 1e6));
      }

      stage = "cannot load data";
      stop.check();
      long t0 = System.nanoTime();
      MnistDataset.Splits splits = MnistDataset.load(train, spec.getChannelsOrDefault("test", ""));
      events.info(String.format(Locale.ROOT, "loaded %d training and %d test images (%dx%d) in %.1f s",
          splits.train().size(), splits.test().size(), splits.train().rows(), splits.train().cols(),
          (System.nanoTime() - t0) / 1e9));
      stop.check();

      try (NDManager data = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
        TrainingData trainData = TrainingData.of(splits.train(), data);
        stage = "cannot set up gradient synchronisation";
        GradientSync sync = syncFactory.create(assignment, rendezvous);
        stage = "training failed";
        // Only rank 0 checkpoints (every rank holds the same parameters and momentum); in an elastic
        // job any rank may become rank 0, so every rank has a writer ready.
        CheckpointWriter writer = rank == 0 || sync instanceof io.kiln.worker.training.ElasticSync ? new CheckpointWriter(ArtifactStore.forRoot(jobUri),
            jobUri.resolve(Checkpoints.FOLDER), checkpointing.keep(), new CheckpointListener(), assignment.getJobId(),
            assignment.getTaskId()) : null;
        try {
          // an elastic rank's place comes from its group (a rank joining a running job gets it there)
          int loopRank = sync instanceof io.kiln.worker.training.ElasticSync es ? es.view().rank() : rank;
          int loopWorld = sync instanceof io.kiln.worker.training.ElasticSync es ? es.view().worldSize() : world;
          TrainingLoop.Result result = new TrainingLoop(definition, hp, config, loopRank, loopWorld, sync)
              .listener(new Listener())
              .stopSignal(stop)
              .checkpoints(writer, checkpointing.everySteps())
              .resumeFrom(resume)
              .train(trainData);
          resume = null; // its copy of the state can go
          try (var model = result.model()) {
            Map<String, Double> metrics = new LinkedHashMap<>();
            metrics.put("train_loss", result.trainLoss());
            metrics.put("samples_per_sec", result.samplesPerSec());
            metrics.put("train_seconds", result.trainSeconds());
            metrics.put("steps", (double) result.steps());
            metrics.put("epochs", (double) result.epochsCompleted());
            metrics.put("compute_ms_per_step", result.computeMsPerStep());
            metrics.put("comm_ms_per_step", result.commMsPerStep());
            metrics.put("epochs_exactly_once", (double) result.epochsVerified());
            metrics.put("sample_accounting_errors", (double) result.accountingErrors());
            metrics.put("final_world_size", (double) result.worldSize());
            if (result.rank() == 0) {
              stage = "evaluation failed";
              stop.check();
              TrainingData testData = TrainingData.of(splits.test(), data);
              double accuracy = TrainingLoop.accuracy(result.block(), result.inputShape(), testData, stop);
              metrics.put("test_accuracy", accuracy);
              events.info(String.format(Locale.ROOT, "test accuracy %.4f on %d images; train loss %.4f; %.0f samples/s",
                  accuracy, splits.test().size(), result.trainLoss(), result.samplesPerSec()));
              stage = "cannot write the model";
              stop.check();
              Map<String, String> recorded = new LinkedHashMap<>(hp);
              recorded.putAll(config.asHyperparameters());
              ModelArtifacts.write(ArtifactStore.forRoot(modelUri), modelUri, model, new ModelArtifacts.Description(
                  definition.name(), recorded, result.inputShape(), splits.train().rows(), splits.train().cols(),
                  splits.train().numClasses(), splits.classNames(), metrics, assignment.getJobId(),
                  assignment.getTaskId()));
              ModelArtifacts.writeMetrics(ArtifactStore.forRoot(jobUri),
                  ModelArtifacts.normalize(jobUri.resolve("metrics.json")), metrics);
              if (userModel != null) userModel.copyInto(modelUri);
              events.info("model written to " + modelUri);
            }
            if (writer != null) {
              // the last checkpoint was written while the model was evaluated; make sure it is complete
              writer.close();
              CheckpointWriter.Stats st = writer.stats();
              events.info(String.format(Locale.ROOT, "checkpoints: %d written, %d skipped, %d failed; snapshot copy "
                  + "%.2f ms mean (max %.2f ms) on the training thread, background write %.1f ms mean", st.written(),
                  st.skipped(), st.failed(), st.meanSnapshotMs(), st.maxSnapshotMs(), st.meanWriteMs()));
            }
            stop.check();
            events.completed(modelUri.toString(), metrics);
          }
        } finally {
          if (writer != null) writer.close();
        }
      }
    } catch (TaskStoppedException e) {
      events.info("stopped: " + e.getMessage());
      events.failed("stopped: " + e.getMessage());
    } catch (CheckpointException e) {
      // its message names the checkpoint and the problem (a cause's message would only name a file)
      String reason = "cannot resume from checkpoint: " + e.getMessage();
      log.warn("[{}] {}", assignment.getTaskId(), reason);
      events.log("ERROR", reason);
      events.failed(reason);
    } catch (Throwable e) {
      String reason = stage + ": " + rootCauseMessage(e);
      if (e instanceof DataException || e instanceof IllegalArgumentException) {
        log.warn("[{}] {}", assignment.getTaskId(), reason);
      } else {
        log.error("[{}] {}", assignment.getTaskId(), reason, e);
      }
      events.log("ERROR", reason);
      events.failed(reason);
    } finally {
      if (userModel != null) userModel.close();
    }
  }

  /** The model folder: the spec's output_uri if set, else {@code <job_artifacts_uri>/model/}. */
  URI modelUri() {
    String out = assignment.getSpec().getOutputUri();
    if (!out.isBlank()) return ModelArtifacts.folder(toUri(out));
    return ModelArtifacts.folder(jobUri().resolve("model/"));
  }

  /** The job's artifact folder: job_artifacts_uri, else {@code <kiln.artifacts.root>/jobs/<job_id>/}. */
  URI jobUri() {
    String job = assignment.getJobArtifactsUri();
    if (!job.isBlank()) return ModelArtifacts.folder(toUri(job));
    return ModelArtifacts.folder(ModelArtifacts.folder(defaultArtifactsRoot).resolve("jobs/" + assignment.getJobId() + "/"));
  }

  private static URI toUri(String s) {
    return s.startsWith("/") ? java.nio.file.Path.of(s).toUri() : URI.create(s);
  }

  /**
   * The innermost cause's message (its class name when it has none), or the outer message when that
   * already contains it (our messages name the file or field and include the cause).
   */
  public static String rootCauseMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) t = t.getCause();
    String m = t.getMessage();
    if (m == null || m.isBlank()) m = t.getClass().getSimpleName();
    if (t != e && e.getMessage() != null && e.getMessage().contains(m)) return e.getMessage();
    return m;
  }

  /** Checkpoint writer thread: its lines go to the task's log, each complete checkpoint to the coordinator. */
  private final class CheckpointListener implements CheckpointWriter.Listener {
    @Override
    public void onLog(String level, String message) {
      events.log(level, message);
    }

    @Override
    public void onWritten(CheckpointWriter.Written w) {
      events.checkpoint(TaskCheckpoint.newBuilder().setUri(w.uri().toString()).setStep(w.position().globalStep())
          .setEpoch(w.position().epoch()).setStepInEpoch(w.position().stepInEpoch())
          .setEpochEnd(w.position().epochEnd()).build());
    }
  }

  private final class Listener implements TrainingLoop.Listener {
    @Override
    public void onLog(String message) {
      events.info(message);
    }

    @Override
    public void onProgress(TrainingLoop.Progress p) {
      events.progress(Progress.newBuilder().setStep(p.step()).setTotalSteps(p.totalSteps()).setEpoch(p.epoch())
          .setTotalEpochs(p.totalEpochs()).setLoss(p.loss()).setSamplesPerSec(p.samplesPerSec())
          .setComputeMsPerStep(p.computeMsPerStep()).setCommMsPerStep(p.commMsPerStep())
          .setTimestampMs(p.timestampMs()).build());
    }
  }
}

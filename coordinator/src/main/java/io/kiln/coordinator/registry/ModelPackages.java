package io.kiln.coordinator.registry;

import io.kiln.coordinator.jobs.JobState;
import io.kiln.coordinator.jobs.JobStatus;
import io.kiln.protocol.proto.ModelLineage;
import io.kiln.protocol.proto.ModelPackage;
import io.kiln.protocol.proto.ModelSignature;
import java.net.URI;

/** Builds the {@link ModelPackage} of a registration from the request and, if given, its training job. */
final class ModelPackages {
  /** Script jobs name their packaged source here (docs/script-mode.md). */
  static final String SUBMIT_DIRECTORY = "sagemaker_submit_directory";

  private ModelPackages() {}

  /** Checks that the job can give a model: it must have completed and left one. */
  static void requireModel(JobState job) {
    if (job.status() != JobStatus.Completed) {
      throw new RegistryException(RegistryException.Kind.CONFLICT, "training job " + job.jobId() + " is "
          + job.status() + ", not Completed: only a completed job has a model to register"
          + (job.status() == JobStatus.Failed ? " (it failed: " + job.failureReason() + ")" : ""));
    }
    if (job.modelUri().isBlank()) {
      throw new RegistryException(RegistryException.Kind.CONFLICT, "training job " + job.jobId()
          + " completed without a model URI");
    }
  }

  /** The framework a registration names: the request's, else the job's algorithm. */
  static String framework(RegistrationRequest r, JobState job) {
    return !r.framework().isEmpty() ? r.framework() : job.spec().getAlgorithm();
  }

  static ModelPackage build(RegistrationRequest r, JobState job, URI folder, ModelSignature inferred) {
    ModelPackage.Builder b = ModelPackage.newBuilder().setArtifactUri(folder.toString())
        .setFramework(job == null ? r.framework() : framework(r, job)).setDescription(r.description())
        .setSignature(r.signature() != null ? r.signature() : inferred);
    ModelLineage.Builder l = ModelLineage.newBuilder();
    if (job != null) {
      b.putAllMetrics(job.metrics());
      var spec = job.spec();
      l.setTrainingJobId(job.jobId()).setTrainingJobName(spec.getName()).putAllChannels(spec.getChannelsMap())
          .putAllHyperparameters(spec.getHyperparametersMap()).setTrainedBy(job.submittedBy())
          .setTrainedAtMs(job.endedAt());
      String source = spec.getHyperparametersMap().getOrDefault(SUBMIT_DIRECTORY, "");
      l.setSourceUri(!source.isEmpty() ? source : "builtin:" + spec.getAlgorithm());
    }
    b.putAllMetrics(r.metrics());
    if (!r.sourceUri().isEmpty()) l.setSourceUri(r.sourceUri());
    return b.setLineage(l).build();
  }
}

package io.kiln.coordinator.registry;

import io.kiln.coordinator.jobs.JobManager;
import io.kiln.coordinator.jobs.JobState;
import io.kiln.protocol.proto.ModelSignature;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.japi.function.Function;
import org.apache.pekko.pattern.StatusReply;

/**
 * The model registry as Java calls (the REST API and deployments use it): asks the
 * {@link RegistryManager}, and for a registration from a job asks the {@link JobManager} for the
 * job and checks the model folder (on the blocking dispatcher: it reads files). A refused request
 * completes exceptionally with a {@link RegistryException}.
 */
public final class ModelRegistry {
  private final ActorSystem<?> system;
  private final ActorRef<RegistryManager.Command> registry;
  private final ActorRef<JobManager.Command> jobs;
  private final Duration timeout;
  private final Executor blocking;

  public ModelRegistry(ActorSystem<?> system, ActorRef<RegistryManager.Command> registry,
                       ActorRef<JobManager.Command> jobs, Duration timeout) {
    this.system = system;
    this.registry = registry;
    this.jobs = jobs;
    this.timeout = timeout;
    this.blocking = system.dispatchers().lookup(DispatcherSelector.blocking());
  }

  /**
   * Starts (or, called again, finds) the registry singleton on the {@code coordinator} role and
   * returns its Java API. {@code ids} lists persistence ids ({@code JdbcReadJournal::currentPersistenceIds}).
   */
  public static ModelRegistry start(ActorSystem<?> system, RegistryManager.IdSource ids,
                                    ActorRef<JobManager.Command> jobs, Duration timeout) {
    ActorRef<RegistryManager.Command> registry = ClusterSingleton.get(system).init(
        SingletonActor.of(RegistryManager.create(ids), "model-registry")
            .withSettings(ClusterSingletonSettings.create(system).withRole("coordinator")));
    return new ModelRegistry(system, registry, jobs, timeout);
  }

  public CompletionStage<GroupState> createGroup(String name, String description, String user) {
    return ask(r -> new RegistryManager.CreateGroup(name, description, user, r));
  }

  public CompletionStage<List<GroupState>> listGroups() {
    return AskPattern.ask(registry, RegistryManager.ListGroups::new, timeout, system.scheduler());
  }

  public CompletionStage<GroupState> group(String name) {
    return ask(r -> new RegistryManager.GetGroup(name, r));
  }

  public CompletionStage<ModelVersion> version(String group, int version) {
    return group(group).thenApply(g -> g.version(version).orElseThrow(() -> RegistryException.notFound(
        "model package group " + group + " has no version " + version
            + (g.versions().isEmpty() ? " (it has no versions)" : " (versions 1.." + g.versions().size() + ")"))));
  }

  /** The highest-numbered Approved version of {@code group}; fails NOT_FOUND when none is approved. */
  public CompletionStage<ModelVersion> latestApproved(String group) {
    return ask(r -> new RegistryManager.GetLatestApproved(group, r));
  }

  /** Registers a new version (numbered by the group), PendingManualApproval. */
  public CompletionStage<ModelVersion> register(String group, RegistrationRequest request, String user) {
    // The group first: a missing group is the first thing to tell, before jobs and files.
    return group(group)
        .thenCompose(g -> request.trainingJobId().isEmpty() ? CompletableFuture.completedFuture(Optional.<JobState>empty())
            : job(request.trainingJobId()).thenApply(Optional::of))
        .thenApplyAsync(job -> {
          JobState j = job.orElse(null);
          if (j != null) ModelPackages.requireModel(j);
          URI folder = ModelArtifactCheck.folderUri(j != null ? j.modelUri() : request.modelUri());
          String framework = j != null ? ModelPackages.framework(request, j) : request.framework();
          ModelSignature inferred = ModelArtifactCheck.check(folder, framework);
          return ModelPackages.build(request, j, folder, inferred);
        }, blocking)
        .thenCompose(pkg -> ask(r -> new RegistryManager.Register(group, pkg, user, r)));
  }

  public CompletionStage<ModelVersion> setApproval(String group, int version, ApprovalStatus status, String reason,
                                                   String user) {
    return ask(r -> new RegistryManager.SetApproval(group, version, status, reason, user, r));
  }

  private CompletionStage<JobState> job(String jobId) {
    CompletionStage<Optional<JobState>> found = AskPattern.ask(jobs, r -> new JobManager.Get(jobId, r), timeout,
        system.scheduler());
    return found.thenApply(o -> o.orElseThrow(() -> RegistryException.invalid("no training job " + jobId)));
  }

  private <T> CompletionStage<T> ask(Function<ActorRef<StatusReply<T>>, RegistryManager.Command> message) {
    return AskPattern.askWithStatus(registry, message, timeout, system.scheduler());
  }
}

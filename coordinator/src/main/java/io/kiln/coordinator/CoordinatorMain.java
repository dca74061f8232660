package io.kiln.coordinator;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiRoutes;
import io.kiln.coordinator.api.ApiToken;
import io.kiln.coordinator.jobs.JobManager;
import io.kiln.coordinator.registry.ModelRegistry;
import io.kiln.coordinator.registry.RegistryRoutes;
import io.kiln.coordinator.telemetry.JobTelemetry;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.persistence.jdbc.query.javadsl.JdbcReadJournal;
import org.apache.pekko.persistence.jdbc.testkit.javadsl.SchemaUtils;
import org.apache.pekko.persistence.query.PersistenceQuery;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts a coordinator node: the journal, the job manager (a cluster singleton on the
 * {@code coordinator} role) and the REST API. When the API answers it writes
 * {@code <data-dir>/coordinator.json} so that the CLI finds it.
 */
public final class CoordinatorMain {
  private static final Logger log = LoggerFactory.getLogger(CoordinatorMain.class);

  /** A started coordinator: its actor system and the URL its API answers on. */
  public record Running(ActorSystem<Void> system, String apiUrl, Path dataDir) {}

  public static void main(String[] args) throws Exception {
    // The process is the node: when the node leaves the cluster (downed, or shut down), exit.
    Config overrides = ConfigFactory.parseString("pekko.coordinated-shutdown.exit-jvm = on");
    try {
      launch(overrides);
    } catch (Exception e) {
      log.error("coordinator failed to start: {}", e.getMessage(), e);
      System.exit(1);
    }
  }

  /** Starts a coordinator with {@code overrides} on top of system properties and reference.conf. */
  public static Running launch(Config overrides) throws Exception {
    ConfigFactory.invalidateCaches();
    // Unresolved reference.conf, so that overrides of kiln.data-dir reach the paths derived from it.
    Config base = overrides.withFallback(ConfigFactory.systemProperties())
        .withFallback(ConfigFactory.defaultApplication())
        .withFallback(ConfigFactory.defaultReferenceUnresolved())
        .resolve();
    Config config = JournalSettings.overlay(base).withFallback(base);
    Path dataDir = Path.of(config.getString("kiln.data-dir")).toAbsolutePath();
    Files.createDirectories(dataDir);
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "kiln", config);
    try {
      return new Running(system, start(system, config, dataDir), dataDir);
    } catch (Exception e) {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
      throw e;
    }
  }

  private static String start(ActorSystem<Void> system, Config config, Path dataDir) throws Exception {
    log.info("journal: {}", JournalSettings.describe(config));
    SchemaUtils.createIfNotExists(system).toCompletableFuture().get(30, TimeUnit.SECONDS);
    ApiToken token = ApiToken.loadOrCreate(dataDir);
    JobTelemetry telemetry = new JobTelemetry(dataDir.resolve("job-logs"));

    String artifactsRoot = config.getString("kiln.artifacts.root");
    if (!artifactsRoot.endsWith("/")) artifactsRoot = artifactsRoot + "/";
    // Normalise to an absolute URI (file:/x/ rather than file:x/) so workers and users see one form.
    artifactsRoot = URI.create(artifactsRoot).normalize().toString();
    JobManager.Settings settings = new JobManager.Settings(artifactsRoot,
        config.getDuration("kiln.jobs.progress-checkpoint-interval"), config.getDuration("kiln.jobs.stop-timeout"),
        config.getDuration("kiln.jobs.start-timeout"), new io.kiln.coordinator.jobs.TrainingJob.ElasticSettings(
            config.getDuration("kiln.jobs.regroup-timeout"), config.getDuration("kiln.jobs.min-workers-timeout"),
            config.getInt("kiln.jobs.max-restarts"), config.getDuration("kiln.jobs.reattach-timeout")));
    JdbcReadJournal readJournal = PersistenceQuery.get(Adapter.toClassic(system))
        .getReadJournalFor(JdbcReadJournal.class, JdbcReadJournal.Identifier());
    ActorRef<JobManager.Command> jobs = ClusterSingleton.get(system).init(
        SingletonActor.of(JobManager.create(readJournal::currentPersistenceIds, telemetry, settings), "job-manager")
            .withSettings(ClusterSingletonSettings.create(system).withRole("coordinator")));

    Duration askTimeout = config.getDuration("kiln.api.ask-timeout");
    // Each capability beyond training jobs (tuning, registry, endpoints, ...) adds its API slice here.
    List<ApiExtension> extensions = new ArrayList<>();
    ModelRegistry models = ModelRegistry.start(system, readJournal::currentPersistenceIds, jobs, askTimeout);
    extensions.add(new RegistryRoutes(models));
    extensions.add(new io.kiln.coordinator.sources.SourcesRoutes(system, artifactsRoot,
        config.getBytes("kiln.api.max-source-size")));
    extensions.add(io.kiln.coordinator.tuning.TuningApi.start(system, config, jobs, readJournal::currentPersistenceIds, telemetry::latestProgress));
    // endpoint replicas and transform splits run on workers, placed through one gateway
    io.kiln.coordinator.hosting.WorkerHosts hosts = new io.kiln.coordinator.hosting.WorkerHosts(system);
    io.kiln.coordinator.endpoints.Endpoints endpoints = io.kiln.coordinator.endpoints.Endpoints.start(system, config,
        hosts, token.value(), models, readJournal::currentPersistenceIds, askTimeout);
    // the data plane: a Netty listener of its own, and the same forwarding behind /endpoints on the API port
    io.kiln.coordinator.endpoints.DataPlane dataPlane = io.kiln.coordinator.endpoints.DataPlane.start(system, config, endpoints, token);
    log.info("Kiln endpoint data plane listening on {} ({}): {}/endpoints/<name>/invocations", dataPlane.url(),
        dataPlane.transport(), dataPlane.url());
    extensions.add(new io.kiln.coordinator.endpoints.EndpointRoutes(endpoints,
        new io.kiln.coordinator.endpoints.InvocationRouter(dataPlane.forwarder()), dataPlane.url()));
    extensions.add(new io.kiln.coordinator.transform.TransformRoutes(io.kiln.coordinator.transform.TransformJobs.start(
        system, config, hosts, models, readJournal::currentPersistenceIds, askTimeout)));
    ApiRoutes routes = new ApiRoutes(system, jobs, telemetry, token, askTimeout, extensions);
    String host = config.getString("kiln.api.host");
    int port = config.getInt("kiln.api.port");
    ServerBinding binding = Http.get(system).newServerAt(host, port).bind(routes.routes())
        .toCompletableFuture().get(30, TimeUnit.SECONDS);
    String apiUrl = "http://" + host + ":" + binding.localAddress().getPort();
    log.info("Kiln API listening on {} (data dir {})", apiUrl, dataDir);

    Path info = dataDir.resolve("coordinator.json");
    Path tmp = Files.createTempFile(dataDir, ".coordinator", ".json");
    Files.writeString(tmp, new ObjectMapper().writeValueAsString(Map.of(
        "apiUrl", apiUrl, "dataPlaneUrl", dataPlane.url(), "pid", ProcessHandle.current().pid(),
        "clusterPort", config.getInt("kiln.cluster.port"))));
    Files.move(tmp, info, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    system.getWhenTerminated().thenRun(() -> {
      try {
        Files.deleteIfExists(info);
      } catch (Exception ignored) {
        // best effort: a stale file only points the CLI at a dead URL, which it reports
      }
    });
    return apiUrl;
  }
}

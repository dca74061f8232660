package io.kiln.coordinator.endpoints;

import com.typesafe.config.Config;
import io.kiln.coordinator.hosting.HostingException;
import io.kiln.coordinator.hosting.WorkerHosts;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import io.kiln.protocol.proto.HostedProcessReport;
import io.kiln.protocol.proto.HostedProcessSpec;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;

/**
 * Starts and stops an endpoint's replicas: each one an {@code io.kiln.deploy.ServeMain} process
 * hosted by a worker ({@link WorkerHosts}; the worker picks a free port, runs it in a sandbox and
 * answers once it listens and answers {@code /ping}), with the coordinator's API token in
 * {@code KILN_TOKEN}. A replica that exits first fails the launch with its own last words (e.g. the
 * corrupt file). Blocking: callers run it on the blocking dispatcher.
 */
public final class ReplicaLauncher {
  static final String SERVE_MAIN = "io.kiln.deploy.ServeMain";

  /** What a launch needs from the coordinator's config. */
  public record Settings(Duration startTimeout, Duration drainTimeout, String token) {
    public static Settings of(Config c, String token) {
      return new Settings(c.getDuration("kiln.endpoints.start-timeout"), c.getDuration("kiln.endpoints.drain-timeout"), token);
    }
  }

  /** A launch that did not come up; the message is the replica's reason. */
  public static final class StartException extends RuntimeException {
    public StartException(String message) {
      super(message, null, false, false);
    }
  }

  private final Settings settings;
  private final WorkerHosts hosts;
  private final Executor blocking;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  public ReplicaLauncher(Settings settings, WorkerHosts hosts, Executor blocking) {
    this.settings = settings;
    this.hosts = hosts;
    this.blocking = blocking;
  }

  public Settings settings() {
    return settings;
  }

  /** Starts {@code instances} replicas of every variant at once and waits for all; all or none. */
  public List<EndpointReplica> launch(String endpoint, long generation, EndpointConfig config) {
    List<CompletableFuture<EndpointReplica>> starting = new ArrayList<>();
    for (EndpointVariant v : config.getVariantsList()) {
      for (int i = 0; i < v.getInstances(); i++) {
        starting.add(CompletableFuture.supplyAsync(() -> launchOne(endpoint, generation, config, v), blocking));
      }
    }
    List<EndpointReplica> ready = new ArrayList<>();
    RuntimeException first = null;
    for (CompletableFuture<EndpointReplica> f : starting) {
      try {
        ready.add(f.join());
      } catch (CompletionException e) {
        if (first == null) first = e.getCause() instanceof RuntimeException r ? r : new StartException(e.getCause().toString());
      }
    }
    if (first != null) {
      ready.forEach(r -> stop(r, "another replica of its generation failed to start"));
      throw first;
    }
    return ready;
  }

  /** One replica of {@code variant} (a launch, or autoscaling). */
  public EndpointReplica launchOne(String endpoint, long generation, EndpointConfig config, EndpointVariant v) {
    HostedProcessSpec spec = withToken(spec(endpoint, generation, config, v));
    WorkerHosts.Placed placed;
    try {
      placed = hosts.start(spec, Duration.ofSeconds(30));
    } catch (HostingException e) {
      throw new StartException("variant " + v.getName() + ": " + e.getMessage());
    }
    HostedProcessReport r = placed.report();
    if (r.getOutcome() != HostedProcessReport.Outcome.READY) {
      throw new StartException("variant " + v.getName() + ": the replica on worker " + r.getWorkerId() + " "
          + (r.getReason().isEmpty() ? "did not start" : r.getReason()) + (r.getLogPath().isEmpty() ? "" : " (log " + r.getLogPath() + ")"));
    }
    return EndpointReplica.newBuilder().setVariant(v.getName()).setUrl(r.getUrl()).setPid(r.getPid())
        .setGeneration(generation).setWorker(hosts.refOf(placed.worker())).setWorkerId(placed.worker()).setProcessId(spec.getId()).build();
  }

  static HostedProcessSpec spec(String endpoint, long generation, EndpointConfig config, EndpointVariant v) {
    HostedProcessSpec.Builder b = HostedProcessSpec.newBuilder()
        .setId("endpoint/" + endpoint + "/g" + generation + "/" + v.getName() + "/" + UUID.randomUUID().toString().substring(0, 8))
        .setMainClass(SERVE_MAIN)
        .addJvmArgs("-Dkiln.endpoint.replica=" + endpoint);
    b.addAllArgs(List.of(v.getMultiModel() ? "--multi-model" : "--model", v.getModelUri(), "--name", v.getName(),
        "--port", "0", "--host", "{worker-host}", "--preload", Boolean.toString(!v.getMultiModel())));
    if (config.getMaxConcurrency() > 0) b.addAllArgs(List.of("--max-concurrency", Integer.toString(config.getMaxConcurrency())));
    if (config.getIdleTimeoutMs() > 0) b.addAllArgs(List.of("--idle-timeout", config.getIdleTimeoutMs() + "ms"));
    if (config.getMemoryMb() > 0) {
      // the JVM heap holds the requests; models (PyTorch) live off-heap: half the limit each, the
      // process tree's memory limit (cgroup) is the whole
      long mb = config.getMemoryMb();
      b.setMemoryMb(mb).addJvmArgs("-Xmx" + Math.max(64, mb / 2) + "m")
          .addAllArgs(List.of("--memory-budget-mb", Long.toString(Math.max(16, mb / 2))));
    }
    if (!config.getCaptureUri().isEmpty()) {
      b.addAllArgs(List.of("--capture-uri", config.getCaptureUri(), "--capture-percent", Double.toString(config.getCapturePercent())));
    }
    return b.build();
  }

  HostedProcessSpec withToken(HostedProcessSpec s) {
    return s.toBuilder().putEnv("KILN_TOKEN", settings.token()).build();
  }

  /** Whether a recorded replica still answers {@code /ping} (after a coordinator restart). */
  public boolean answers(EndpointReplica r) {
    if (r.getWorkerId().isEmpty() || !hosts.isLive(r.getWorkerId()) || !ping(r.getUrl())) return false;
    hosts.adopt(r.getWorkerId());
    return true;
  }

  /** Whether the worker hosting {@code r} is still a live member. */
  public boolean workerLive(EndpointReplica r) {
    return hosts.isLive(r.getWorkerId());
  }

  /** Asks the hosting worker to stop the replica (SIGTERM, then SIGKILL). */
  public void stop(EndpointReplica r, String reason) {
    hosts.stop(r.getWorkerId(), r.getProcessId(), reason);
  }

  /** Whether the replica answers {@code /ping} now (2 s timeout). */
  public boolean ping(EndpointReplica r) {
    return ping(r.getUrl());
  }

  private boolean ping(String url) {
    try {
      HttpResponse<Void> r = http.send(HttpRequest.newBuilder(URI.create(url + "/ping")).timeout(Duration.ofSeconds(2))
          .header("Authorization", "Bearer " + settings.token()).GET().build(), HttpResponse.BodyHandlers.discarding());
      return r.statusCode() == 200;
    } catch (IOException | IllegalArgumentException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StartException("interrupted");
    }
  }
}

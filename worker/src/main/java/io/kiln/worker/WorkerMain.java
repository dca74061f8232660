package io.kiln.worker;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kiln.worker.task.GradientSyncFactory;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A worker process: an actor system named {@code kiln} with role {@code worker} that joins the seed
 * ({@code kiln.cluster.seed}) and runs a {@link WorkerAgent}.
 *
 * <p>Resilience: whenever the actor system terminates without being asked to (this node was downed
 * by the split-brain resolver, or the coordinator left and {@link WorkerNode} asked for a restart),
 * the worker starts a fresh actor system that joins the seed again, retrying with a growing pause
 * (and a log line each time) until one starts. Running tasks are stopped with the old system. On
 * SIGTERM the worker leaves the cluster gracefully (coordinated shutdown) and exits.
 *
 * <pre>
 * java -cp worker/target/classes:$(cat worker/target/classpath.txt) -Dkiln.cluster.port=0 \
 *   -Dkiln.cluster.seed=127.0.0.1:25520 -Dkiln.worker.id=worker-1 -Dkiln.worker.cpus=1 \
 *   -Dkiln.data-dir=/tmp/x -DDJL_CACHE_DIR=$PWD/.cache/djl -Dai.djl.offline=true io.kiln.worker.WorkerMain
 * </pre>
 */
public final class WorkerMain {
  private static final Logger log = LoggerFactory.getLogger(WorkerMain.class);

  private final Config config;
  private final WorkerSettings settings;
  private final GradientSyncFactory syncFactory;
  private final CompletableFuture<Void> stopped = new CompletableFuture<>();
  private volatile boolean stopping;
  /**
   * Running tasks across this process's actor systems: they outlive an actor system that goes down
   * because the coordinator went away, and stop only when the worker itself shuts down.
   */
  private final io.kiln.worker.agent.TaskRegistry tasks = new io.kiln.worker.agent.TaskRegistry(() -> !stopping);
  /** Endpoint replicas and transform splits hosted for the coordinator; like tasks, they outlive an actor system. */
  private final io.kiln.worker.hosting.HostedProcesses hosted;
  private volatile ActorSystem<?> current;
  /** Why the current system is going down (read by the tasks it stops). */
  private volatile String downReason = "the worker's actor system terminated";
  /** Set by {@link #restart}; null when the system terminated on its own. */
  private volatile String restartReason;

  public WorkerMain(Config config, GradientSyncFactory syncFactory) {
    this.config = config;
    this.settings = WorkerSettings.fromConfig(config);
    this.syncFactory = syncFactory;
    this.hosted = new io.kiln.worker.hosting.HostedProcesses(io.kiln.worker.hosting.HostingSettings.fromConfig(config),
        settings.workerId());
  }

  public static void main(String[] args) {
    Config config = loadConfig(ConfigFactory.load());
    CpuAffinity.pinProcess(config.getString("kiln.worker.cpu-set"));
    WorkerSettings s = WorkerSettings.fromConfig(config);
    GradientSyncFactory collectives = new io.kiln.worker.task.CollectiveGradientSyncFactory(
        config.getString("kiln.cluster.host"), s.gpus(), io.kiln.collective.CollectiveOptions.defaults()
            .withSharedMemory(config.getBoolean("kiln.worker.collective-shared-memory")),
        config.getDuration("kiln.worker.rendezvous-timeout"), config.getDuration("kiln.worker.regroup-timeout"));
    WorkerMain main = new WorkerMain(config, collectives);
    Runtime.getRuntime().addShutdownHook(new Thread(main::shutdown, "kiln-worker-shutdown"));
    main.run();
    log.info("worker {} exited", main.settings.workerId());
  }

  /**
   * The worker's actor-system config: {@code base} (usually {@code ConfigFactory.load()}) with the
   * worker's cluster roles ({@code kiln.worker.roles}), and coordinated shutdown that neither exits
   * the JVM nor runs from Pekko's own JVM hook (WorkerMain decides when the process ends).
   */
  public static Config loadConfig(Config base) {
    return ConfigFactory.parseMap(Map.of(
            "pekko.cluster.roles", base.getStringList("kiln.worker.roles"),
            "pekko.coordinated-shutdown.exit-jvm", "off",
            "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook", "off",
            "pekko.cluster.run-coordinated-shutdown-when-down", "on"),
        "kiln worker overrides")
        .withFallback(base)
        .resolve();
  }

  public WorkerSettings settings() {
    return settings;
  }

  /** The actor system running now (null between two). */
  public ActorSystem<?> currentSystem() {
    return current;
  }

  /** Runs actor systems one after another until {@link #shutdown()}; returns then. */
  public void run() {
    Duration delay = settings.restartDelay();
    int attempt = 0;
    while (!stopping) {
      ActorSystem<?> system;
      try {
        attempt++;
        downReason = "the worker's actor system terminated";
        system = ActorSystem.create(
            WorkerNode.create(settings, config.getString("kiln.cluster.seed"), syncFactory, this::restart,
                () -> downReason, tasks, hosted),
            "kiln", config);
      } catch (Throwable e) {
        log.warn("cannot start the worker's actor system (attempt {}): {}; retrying in {} ms", attempt, e.toString(),
            delay.toMillis());
        sleep(delay);
        delay = min(delay.multipliedBy(2), settings.restartMaxDelay());
        continue;
      }
      current = system;
      if (stopping) {
        shutdownSystem(system);
      }
      system.getWhenTerminated().toCompletableFuture().join();
      current = null;
      if (stopping) break;
      String why = restartReason != null ? restartReason : terminationReason(system);
      restartReason = null;
      log.warn("the worker's actor system terminated: {}; starting a fresh one in {} ms to re-join seed {}", why,
          settings.restartDelay().toMillis(), config.getString("kiln.cluster.seed"));
      sleep(settings.restartDelay());
      delay = settings.restartDelay();
      attempt = 0;
    }
    hosted.close();
    stopped.complete(null);
  }

  /** Replaces the running actor system with a fresh one (tasks on it are stopped). */
  public void restart(String reason) {
    ActorSystem<?> s = current;
    restartReason = reason;
    downReason = reason + "; the worker re-joins with a fresh actor system";
    if (s != null) {
      CompletableFuture.runAsync(() -> s.terminate());
    }
  }

  /** Leaves the cluster gracefully, stops the actor system and makes {@link #run()} return. */
  public void shutdown() {
    if (stopping) return;
    stopping = true;
    downReason = "the worker is shutting down";
    ActorSystem<?> s = current;
    log.info("worker {} shutting down: leaving the cluster", settings.workerId());
    if (s != null) shutdownSystem(s);
    try {
      stopped.get(settings.shutdownTimeout().toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      log.warn("worker {} did not shut down within {}; exiting anyway", settings.workerId(), settings.shutdownTimeout());
    } catch (Exception e) {
      Thread.currentThread().interrupt();
    }
  }

  private void shutdownSystem(ActorSystem<?> s) {
    try {
      CoordinatedShutdown.get(s).runAll(CoordinatedShutdown.jvmExitReason())
          .toCompletableFuture().get(settings.shutdownTimeout().toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      log.warn("graceful leave did not finish: {}; terminating", e.toString());
      s.terminate();
    }
  }

  private static String terminationReason(ActorSystem<?> system) {
    try {
      var reason = CoordinatedShutdown.get(system).getShutdownReason();
      if (reason.isEmpty()) return "no shutdown reason recorded";
      if (reason.get() instanceof CoordinatedShutdown.ClusterDowningReason$) {
        return "this node was downed by the split-brain resolver";
      }
      return reason.get().getClass().getSimpleName().replace("$", "");
    } catch (RuntimeException e) {
      return "unknown reason (" + e + ")";
    }
  }

  private static Duration min(Duration a, Duration b) {
    return a.compareTo(b) <= 0 ? a : b;
  }

  private void sleep(Duration d) {
    long end = System.nanoTime() + d.toNanos();
    while (!stopping && System.nanoTime() < end) {
      try {
        Thread.sleep(Math.min(200, Math.max(1, (end - System.nanoTime()) / 1_000_000)));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }
}

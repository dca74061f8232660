package io.kiln.worker;

import com.typesafe.config.Config;
import io.kiln.protocol.proto.WorkerResources;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A worker's identity and offered resources ({@code kiln.worker.*}) and where it writes artifacts
 * when an assignment does not say.
 */
public record WorkerSettings(String workerId, int cpus, long memoryMb, int gpus, List<String> gpuNames,
    URI artifactsRoot, List<String> roles, String coordinatorRole, Duration restartDelay, Duration restartMaxDelay,
    Duration joinLogInterval, Duration shutdownTimeout) {

  public WorkerSettings {
    gpuNames = List.copyOf(gpuNames);
    roles = List.copyOf(roles);
  }

  /** Reads {@code kiln.worker.*}, {@code kiln.artifacts.root} and {@code kiln.data-dir}. */
  public static WorkerSettings fromConfig(Config config) {
    Config w = config.getConfig("kiln.worker");
    String id = w.getString("id").trim();
    if (id.isEmpty()) id = defaultWorkerId();
    int cpus = w.getInt("cpus");
    if (cpus <= 0) cpus = Runtime.getRuntime().availableProcessors();
    long mem = w.getLong("memory-mb");
    if (mem <= 0) mem = physicalMemoryMb();
    String root = config.hasPath("kiln.artifacts.root") ? config.getString("kiln.artifacts.root").trim() : "";
    URI artifactsRoot = root.isEmpty()
        ? Path.of(config.getString("kiln.data-dir")).toAbsolutePath().resolve("artifacts").toUri()
        : (root.startsWith("/") ? Path.of(root).toUri() : URI.create(root));
    return new WorkerSettings(id, cpus, mem, Math.max(0, w.getInt("gpus")), w.getStringList("gpu-names"), artifactsRoot,
        w.getStringList("roles"), w.getString("coordinator-role"), w.getDuration("restart-delay"),
        w.getDuration("restart-max-delay"), w.getDuration("join-log-interval"), w.getDuration("shutdown-timeout"));
  }

  /** Settings for tests and embedded workers: the given id and cpus, artifacts under {@code artifactsRoot}. */
  public static WorkerSettings of(String workerId, int cpus, Path artifactsRoot) {
    return new WorkerSettings(workerId, cpus, physicalMemoryMb(), 0, List.of(), artifactsRoot.toAbsolutePath().toUri(),
        List.of("worker"), "coordinator", Duration.ofSeconds(2), Duration.ofSeconds(30), Duration.ofSeconds(15),
        Duration.ofSeconds(20));
  }

  public WorkerResources resources() {
    return WorkerResources.newBuilder().setCpus(cpus).setMemoryMb(memoryMb).setGpus(gpus).addAllGpuNames(gpuNames)
        .build();
  }

  public static String defaultWorkerId() {
    return hostname() + "-" + ProcessHandle.current().pid();
  }

  public static String hostname() {
    String env = System.getenv("HOSTNAME");
    if (env != null && !env.isBlank()) return env.trim();
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (Exception e) {
      return "localhost";
    }
  }

  public static long physicalMemoryMb() {
    try {
      var os = ManagementFactory.getOperatingSystemMXBean();
      if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
        return sun.getTotalMemorySize() / (1024 * 1024);
      }
    } catch (Throwable ignored) {
      // fall through
    }
    return Runtime.getRuntime().maxMemory() / (1024 * 1024);
  }
}

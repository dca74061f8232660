package io.kiln.worker.hosting;

import com.typesafe.config.Config;
import io.kiln.worker.sandbox.SandboxSettings;
import java.nio.file.Path;
import java.util.List;

/**
 * How a worker runs the deploy module's processes for the coordinator (endpoint replicas, batch
 * transform splits): {@code kiln.worker.hosting.*} in the worker's reference.conf.
 *
 * @param host the address other nodes reach this worker at; replaces {@code {worker-host}} in arguments
 * @param classpath the deploy module's runtime classpath; empty: this worker refuses hosted processes
 * @param java the java binary (empty in config: this JVM's)
 * @param jvmOptions put before every hosted process's own JVM arguments
 * @param logDir one log file per process
 * @param sandbox the same isolation as script tasks: own process group, killed with the worker, memory cgroup
 */
public record HostingSettings(String host, String classpath, String java, List<String> jvmOptions, Path logDir, SandboxSettings sandbox) {

  public static HostingSettings fromConfig(Config c) {
    String java = c.getString("kiln.worker.hosting.java");
    return new HostingSettings(c.getString("kiln.cluster.host"), c.getString("kiln.worker.hosting.classpath"),
        java.isBlank() ? Path.of(System.getProperty("java.home"), "bin", "java").toString() : java,
        c.getStringList("kiln.worker.hosting.jvm-options"),
        Path.of(c.getString("kiln.data-dir")).toAbsolutePath().resolve("hosted"), SandboxSettings.fromConfig(c));
  }
}

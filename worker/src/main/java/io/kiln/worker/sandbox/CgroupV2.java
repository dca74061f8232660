package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * A task cgroup on the unified hierarchy: {@code memory.max} (and {@code memory.swap.max 0}, so
 * the limit is not dodged by swapping), {@code cpu.max}, {@code pids.max}; killed with
 * {@code cgroup.kill} (Linux 5.14+) or, before that, by signalling each listed process.
 */
final class CgroupV2 implements TaskCgroup {
  static final List<String> CONTROLLERS = List.of("memory", "cpu", "pids");
  private final Path dir;
  private final String description;

  private CgroupV2(Path dir, String description) {
    this.dir = dir;
    this.description = description;
  }

  /** Whether {@code parent}'s own cgroup offers the controllers we need (read from cgroup.controllers). */
  static boolean usable(Path mount) {
    try {
      List<String> have = List.of(Files.readString(mount.resolve("cgroup.controllers")).trim().split("\\s+"));
      return have.containsAll(CONTROLLERS) && Files.isWritable(mount.resolve("cgroup.subtree_control"));
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * Creates {@code <parent>/<name>} with the limits. The parent must hold no processes of its own
   * (cgroup v2's rule for enabling controllers); its own parent must offer the controllers.
   */
  static CgroupV2 create(Path parent, String name, TaskLimits limits) throws IOException {
    Files.createDirectories(parent);
    enableControllers(parent.getParent(), parent);
    enableControllers(parent, parent);
    TaskCgroup.sweep(parent, TaskCgroup.STALE);
    Path dir = parent.resolve(name);
    if (Files.isDirectory(dir)) { // an earlier attempt of this task on this host: end what is left of it
      TaskCgroup.killLoop(dir.resolve("cgroup.procs"));
      TaskCgroup.remove(dir);
    }
    Files.createDirectory(dir);
    List<String> set = new ArrayList<>();
    try {
      if (limits.memoryBytes() > 0) {
        TaskCgroup.write(dir.resolve("memory.max"), String.valueOf(limits.memoryBytes()));
        if (Files.exists(dir.resolve("memory.swap.max"))) TaskCgroup.write(dir.resolve("memory.swap.max"), "0");
        set.add(String.format(Locale.ROOT, "memory.max %d MB", limits.memoryBytes() >> 20));
      }
      if (limits.cpus() > 0) {
        TaskCgroup.write(dir.resolve("cpu.max"), (limits.cpus() * 100_000L) + " 100000");
        set.add("cpu.max " + limits.cpus() + " CPU");
      }
      if (limits.pids() > 0) {
        TaskCgroup.write(dir.resolve("pids.max"), String.valueOf(limits.pids()));
        set.add("pids.max " + limits.pids());
      }
    } catch (IOException e) {
      TaskCgroup.remove(dir);
      throw e;
    }
    return new CgroupV2(dir, "cgroup v2 " + dir + (set.isEmpty() ? "" : ": " + String.join(", ", set)));
  }

  private static void enableControllers(Path cgroup, Path label) throws IOException {
    if (cgroup == null) return;
    Path control = cgroup.resolve("cgroup.subtree_control");
    if (!Files.exists(control)) return;
    String enabled = Files.readString(control);
    for (String c : CONTROLLERS) {
      if (List.of(enabled.trim().split("\\s+")).contains(c)) continue;
      try {
        TaskCgroup.write(control, "+" + c);
      } catch (IOException e) {
        throw new IOException("cannot enable the " + c + " controller below " + cgroup + " (a cgroup v2 parent must "
            + "hold no processes; set kiln.worker.sandbox.cgroup-parent to an empty cgroup, e.g. /sys/fs/cgroup/kiln): "
            + e.getMessage(), e);
      }
    }
  }

  @Override
  public List<Path> procsFiles() {
    return List.of(dir.resolve("cgroup.procs"));
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public void killAll() {
    Path kill = dir.resolve("cgroup.kill");
    if (Files.exists(kill)) {
      try {
        TaskCgroup.write(kill, "1");
      } catch (IOException ignored) {
        // fall through to the loop
      }
    }
    TaskCgroup.killLoop(dir.resolve("cgroup.procs"));
  }

  @Override
  public boolean oomKilled() {
    return TaskCgroup.keyed(dir.resolve("memory.events"), "oom_kill") > 0;
  }

  @Override
  public Optional<Long> peakMemoryBytes() {
    return TaskCgroup.number(dir.resolve("memory.peak"));
  }

  @Override
  public void close() {
    killAll();
    TaskCgroup.remove(dir);
  }
}

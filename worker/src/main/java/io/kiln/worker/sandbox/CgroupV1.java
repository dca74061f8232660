package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * A task's cgroups on the legacy (v1) hierarchies, one per controller: memory
 * ({@code memory.limit_in_bytes}, and {@code memory.memsw.limit_in_bytes} where swap accounting is
 * on), cpu ({@code cpu.cfs_quota_us}) and pids ({@code pids.max}). v1 has no {@code cgroup.kill}:
 * processes are signalled one by one until the pids cgroup (or the memory one) is empty.
 */
final class CgroupV1 implements TaskCgroup {
  /** Controller name to the task's directory in that hierarchy. */
  private final Map<String, Path> dirs;
  private final String description;

  private CgroupV1(Map<String, Path> dirs, String description) {
    this.dirs = dirs;
    this.description = description;
  }

  /** {@code parents}: controller to the directory under which task cgroups go (it is created). */
  static CgroupV1 create(Map<String, Path> parents, String name, TaskLimits limits) throws IOException {
    Map<String, Path> dirs = new LinkedHashMap<>();
    List<String> set = new ArrayList<>();
    try {
      for (Map.Entry<String, Path> p : parents.entrySet()) {
        Files.createDirectories(p.getValue());
        TaskCgroup.sweep(p.getValue(), TaskCgroup.STALE);
        Path dir = p.getValue().resolve(name);
        if (Files.isDirectory(dir)) { // an earlier attempt of this task on this host: end what is left of it
          TaskCgroup.killLoop(dir.resolve("cgroup.procs"));
          TaskCgroup.remove(dir);
        }
        Files.createDirectory(dir);
        dirs.put(p.getKey(), dir);
      }
      Path mem = dirs.get("memory");
      if (mem != null && limits.memoryBytes() > 0) {
        TaskCgroup.write(mem.resolve("memory.limit_in_bytes"), String.valueOf(limits.memoryBytes()));
        Path memsw = mem.resolve("memory.memsw.limit_in_bytes");
        if (Files.exists(memsw)) TaskCgroup.write(memsw, String.valueOf(limits.memoryBytes()));
        set.add(String.format(Locale.ROOT, "memory.limit_in_bytes %d MB", limits.memoryBytes() >> 20));
      }
      Path cpu = dirs.get("cpu");
      if (cpu != null && limits.cpus() > 0) {
        TaskCgroup.write(cpu.resolve("cpu.cfs_period_us"), "100000");
        TaskCgroup.write(cpu.resolve("cpu.cfs_quota_us"), String.valueOf(limits.cpus() * 100_000L));
        set.add("cpu.cfs_quota_us " + limits.cpus() + " CPU");
      }
      Path pids = dirs.get("pids");
      if (pids != null && limits.pids() > 0) {
        TaskCgroup.write(pids.resolve("pids.max"), String.valueOf(limits.pids()));
        set.add("pids.max " + limits.pids());
      }
    } catch (IOException e) {
      dirs.values().forEach(TaskCgroup::remove);
      throw e;
    }
    return new CgroupV1(dirs, "cgroup v1 " + dirs.values() + (set.isEmpty() ? "" : ": " + String.join(", ", set)));
  }

  @Override
  public List<Path> procsFiles() {
    return dirs.values().stream().map(d -> d.resolve("cgroup.procs")).toList();
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public void killAll() {
    Path d = dirs.getOrDefault("pids", dirs.values().iterator().next());
    TaskCgroup.killLoop(d.resolve("cgroup.procs"));
    for (Path other : dirs.values()) TaskCgroup.killLoop(other.resolve("cgroup.procs"));
  }

  @Override
  public boolean oomKilled() {
    Path mem = dirs.get("memory");
    return mem != null && TaskCgroup.keyed(mem.resolve("memory.oom_control"), "oom_kill") > 0;
  }

  @Override
  public Optional<Long> peakMemoryBytes() {
    Path mem = dirs.get("memory");
    return mem == null ? Optional.empty() : TaskCgroup.number(mem.resolve("memory.max_usage_in_bytes"));
  }

  @Override
  public void close() {
    killAll();
    dirs.values().forEach(TaskCgroup::remove);
  }
}

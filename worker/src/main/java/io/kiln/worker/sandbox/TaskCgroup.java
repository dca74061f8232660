package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * One task's cgroup (v2) or set of cgroups (v1: one per controller hierarchy). The task's first
 * process writes its own pid into every {@link #procsFiles()} before it execs the user's code, so
 * everything the code starts is inside from the beginning and cannot leave (unlike a process group).
 */
public interface TaskCgroup extends AutoCloseable {

  /** The {@code cgroup.procs} files the task's first process joins. */
  List<Path> procsFiles();

  /** What is enforced, for the task's log: e.g. "cgroup v2 /sys/fs/cgroup/kiln/t1: memory.max 512 MB, ...". */
  String describe();

  /** SIGKILL to every process in the cgroup ({@code cgroup.kill} where the kernel has it). */
  void killAll();

  /** Whether the kernel's OOM killer killed a process of the cgroup (memory limit reached). */
  boolean oomKilled();

  /** The peak memory use of the cgroup in bytes, where the kernel reports it. */
  Optional<Long> peakMemoryBytes();

  /** Kills what is left and removes the cgroup directories. */
  @Override
  void close();

  // ---------------------------------------------------------------- shared helpers

  static void write(Path file, String value) throws IOException {
    try {
      Files.writeString(file, value, StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new IOException("cannot write '" + value + "' to " + file + ": " + e.getMessage(), e);
    }
  }

  static List<Long> pids(Path procs) {
    List<Long> out = new ArrayList<>();
    try {
      for (String l : Files.readAllLines(procs, StandardCharsets.US_ASCII)) {
        if (!l.isBlank()) out.add(Long.parseLong(l.trim()));
      }
    } catch (IOException | NumberFormatException ignored) {
      // gone: nothing to list
    }
    return out;
  }

  /** SIGKILL to the listed processes until the cgroup is empty (forks in between are caught by the next round). */
  static void killLoop(Path procs) {
    for (int round = 0; round < 100; round++) {
      List<Long> pids = pids(procs);
      if (pids.isEmpty()) return;
      for (long pid : pids) ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
      try {
        Thread.sleep(round < 10 ? 5 : 50);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  /** rmdir, retried briefly: the kernel frees a cgroup a moment after its last process is reaped. */
  static void remove(Path dir) {
    for (int i = 0; i < 50 && Files.isDirectory(dir); i++) {
      try {
        Files.delete(dir);
        return;
      } catch (IOException e) {
        try {
          Thread.sleep(20);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          return;
        }
      }
    }
  }

  /**
   * Removes task cgroups under {@code parent} that hold no process and are older than {@code age}:
   * those of workers that were killed (their task never closed its cgroup). The age keeps a cgroup
   * that another task created but has not joined yet (it joins when its script starts).
   */
  static void sweep(Path parent, java.time.Duration age) {
    if (!Files.isDirectory(parent)) return;
    long before = System.currentTimeMillis() - age.toMillis();
    try (var dirs = Files.list(parent)) {
      for (Path d : (Iterable<Path>) dirs.filter(p -> p.getFileName().toString().startsWith("task-"))::iterator) {
        try {
          if (Files.getLastModifiedTime(d).toMillis() < before && pids(d.resolve("cgroup.procs")).isEmpty()) {
            Files.delete(d);
          }
        } catch (IOException ignored) {
          // in use or gone: leave it
        }
      }
    } catch (IOException ignored) {
      // nothing to sweep
    }
  }

  /** How old an empty task cgroup must be before {@link #sweep} removes it. */
  java.time.Duration STALE = java.time.Duration.ofHours(1);

  /** The value of {@code key N} in a flat-keyed file such as {@code memory.events}, else 0. */
  static long keyed(Path file, String key) {
    try {
      for (String l : Files.readAllLines(file, StandardCharsets.US_ASCII)) {
        String[] f = l.trim().split("\\s+");
        if (f.length == 2 && f[0].equals(key)) return Long.parseLong(f[1]);
      }
    } catch (IOException | NumberFormatException ignored) {
      // not there on this kernel
    }
    return 0;
  }

  static Optional<Long> number(Path file) {
    try {
      return Optional.of(Long.parseLong(Files.readString(file, StandardCharsets.US_ASCII).trim()));
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
  }
}

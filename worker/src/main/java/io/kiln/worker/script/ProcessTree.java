package io.kiln.worker.script;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * A script's process and everything it started. The script is launched through {@code setsid}, so
 * it leads its own process group: {@link #terminate} signals that group (which also reaches
 * children that were re-parented to init when their parent died) and every descendant that
 * {@link ProcessHandle#descendants()} finds, SIGTERM first and SIGKILL after a grace period.
 *
 * <p>The group is only ever signalled once it is verified that its id is the script's own pid
 * (read from {@code /proc}), never the worker's own group.
 */
public final class ProcessTree {
  private static final Path SETSID = firstExisting("/usr/bin/setsid", "/bin/setsid");
  private static final Path KILL = firstExisting("/usr/bin/kill", "/bin/kill");

  private final Process process;
  /** The script's process group id once verified (== its pid), else 0. */
  private volatile long group;

  private ProcessTree(Process process) {
    this.process = process;
  }

  /** Whether scripts can get their own process group here. */
  static boolean ownGroupsAvailable() {
    return SETSID != null && KILL != null;
  }

  /** Starts {@code pb} (whose command begins with {@code setsid}, see Sandbox) and notes its process group. */
  public static ProcessTree start(ProcessBuilder pb) throws IOException {
    ProcessTree t = new ProcessTree(pb.start());
    if (ownGroupsAvailable() && pb.command().size() > 0 && pb.command().get(0).equals(SETSID.toString())) {
      t.verifyGroup(Duration.ofSeconds(2));
    }
    return t;
  }

  public Process process() {
    return process;
  }

  public long pid() {
    return process.pid();
  }

  /** Whether the script leads a verified process group of its own. */
  boolean hasOwnGroup() {
    return group > 0;
  }

  private void verifyGroup(Duration timeout) {
    long pid = process.pid();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      long pgid = processGroupOf(pid);
      if (pgid == pid) {
        group = pid;
        return;
      }
      if (pgid < 0 && !process.isAlive()) return; // gone before we looked: fall back to descendants
      try {
        Thread.sleep(1);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  /** The process group of {@code pid} from {@code /proc/<pid>/stat}, or -1. */
  static long processGroupOf(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"), StandardCharsets.US_ASCII);
      // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses: split after the last ')'
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
      return Long.parseLong(f[2]);
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /**
   * Ends the script and everything it started: SIGTERM to the group and each descendant, then
   * SIGKILL to whatever is still alive after {@code grace}. Returns whether anything had to be
   * killed with SIGKILL. Safe to call after the script exited (cleans up what it left behind).
   */
  public boolean terminate(Duration grace) {
    Set<ProcessHandle> tree = snapshot();
    if (tree.isEmpty() && !groupAlive()) return false;
    signalGroup("TERM");
    for (ProcessHandle h : tree) h.destroy();
    long deadline = System.nanoTime() + grace.toNanos();
    while (System.nanoTime() < deadline) {
      if (tree.stream().noneMatch(ProcessHandle::isAlive) && !groupAlive()) return false;
      sleep(20);
    }
    tree.addAll(snapshot());
    signalGroup("KILL");
    for (ProcessHandle h : tree) h.destroyForcibly();
    try {
      process.waitFor(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return true;
  }

  /** The script's process (while alive) and all its live descendants. */
  private Set<ProcessHandle> snapshot() {
    Set<ProcessHandle> all = new LinkedHashSet<>();
    ProcessHandle h = process.toHandle();
    if (h.isAlive()) all.add(h);
    h.descendants().filter(ProcessHandle::isAlive).forEach(all::add);
    return all;
  }

  /** Whether any process of the script's group is still there (false without a verified group). */
  boolean groupAlive() {
    return group > 0 && runKill("-0", group);
  }

  private void signalGroup(String signal) {
    if (group > 0) runKill("-s", signal, group);
  }

  private static boolean runKill(String option, long pgid) {
    return runKill(option, null, pgid);
  }

  private static boolean runKill(String option, String arg, long pgid) {
    if (KILL == null || pgid <= 1) return false;
    List<String> cmd = new ArrayList<>(List.of(KILL.toString(), option));
    if (arg != null) cmd.add(arg);
    cmd.add("--");
    cmd.add("-" + pgid);
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
      if (!p.waitFor(5, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return false;
      }
      return p.exitValue() == 0;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static Path firstExisting(String... candidates) {
    for (String c : candidates) {
      Path p = Path.of(c);
      if (Files.isExecutable(p)) return p;
    }
    return null;
  }
}

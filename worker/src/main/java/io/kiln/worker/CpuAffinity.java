package io.kiln.worker;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pins the worker process to its CPUs ({@code kiln.worker.cpu-set}) with util-linux's taskset, as a
 * Kubernetes static CPU manager would: a training rank keeps its core and its caches instead of
 * being moved around by the other ranks on the machine. Threads started later inherit the set.
 */
public final class CpuAffinity {
  private static final Logger log = LoggerFactory.getLogger(CpuAffinity.class);

  private CpuAffinity() {}

  /** Pins every thread of this process to {@code cpuSet}; empty does nothing; failures are logged, not fatal. */
  public static boolean pinProcess(String cpuSet) {
    if (cpuSet == null || cpuSet.isBlank()) return false;
    if (!cpuSet.matches("[0-9]+([-,][0-9]+)*")) {
      log.warn("kiln.worker.cpu-set '{}' is not a CPU list such as 0 or 0-3 or 1,3: not pinning", cpuSet);
      return false;
    }
    long pid = ProcessHandle.current().pid();
    try {
      Process p = new ProcessBuilder("taskset", "-a", "-p", "-c", cpuSet, String.valueOf(pid))
          .redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes()).trim();
      if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
        log.warn("cannot pin the worker to CPUs {}: {}", cpuSet, out);
        return false;
      }
      log.info("worker pinned to CPU(s) {}", cpuSet);
      return true;
    } catch (IOException e) {
      log.warn("cannot pin the worker to CPUs {} (is util-linux's taskset installed?): {}", cpuSet, e.getMessage());
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }
}

package io.kiln.coordinator.scheduling;

import io.kiln.protocol.proto.Resources;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * Pure placement rules, apart from the actor so they are easy to test. One rank per worker node
 * (data-parallel ranks gain nothing from sharing a node's cores); ranks go to the nodes with the
 * most free CPUs, ties broken by worker id so placement is deterministic.
 */
public final class Placement {
  private Placement() {}

  /** Normalised request: at least one worker and one CPU each. */
  public static Resources normalise(Resources r) {
    return r.toBuilder()
        .setWorkers(Math.max(1, r.getWorkers()))
        .setCpusPerWorker(Math.max(1, r.getCpusPerWorker()))
        .build();
  }

  /** The fewest ranks an (elastic) request can train with. */
  public static int minWorkers(Resources r) {
    return Math.max(1, r.getMinWorkers() > 0 ? Math.min(r.getMinWorkers(), Math.max(1, r.getWorkers())) : r.getWorkers());
  }

  /** The most ranks an (elastic) request can use: its max_workers, else its workers. */
  public static int maxWorkers(Resources r) {
    return Math.max(Math.max(1, r.getWorkers()), r.getMaxWorkers());
  }

  /** The worker ids to use, or empty when the request cannot be met now. */
  public static Optional<List<String>> place(Resources request, Collection<WorkerSlot> workers) {
    Resources r = normalise(request);
    List<String> chosen = workers.stream()
        .filter(w -> fits(r, w))
        .sorted(Comparator.comparingInt(WorkerSlot::freeCpus).reversed().thenComparing(WorkerSlot::workerId))
        .limit(r.getWorkers())
        .map(WorkerSlot::workerId)
        .toList();
    return chosen.size() == r.getWorkers() ? Optional.of(chosen) : Optional.empty();
  }

  /** Whether a request could ever be met by these workers if they were all idle. */
  public static boolean feasibleWhenIdle(Resources request, Collection<WorkerSlot> workers) {
    Resources r = normalise(request);
    long capable = workers.stream()
        .filter(w -> w.cpus() >= r.getCpusPerWorker() && w.gpus() >= r.getGpusPerWorker()
            && (r.getMemoryMbPerWorker() == 0 || w.memoryMb() >= r.getMemoryMbPerWorker()))
        .count();
    return capable >= r.getWorkers();
  }

  /** A one-line explanation of why a request waits, for the job's status. */
  public static String waitingReason(Resources request, Collection<WorkerSlot> workers) {
    Resources r = normalise(request);
    String need = r.getWorkers() + " worker(s) with " + r.getCpusPerWorker() + " free CPU(s)"
        + (r.getGpusPerWorker() > 0 ? " and " + r.getGpusPerWorker() + " GPU(s)" : "")
        + (r.getMemoryMbPerWorker() > 0 ? " and " + r.getMemoryMbPerWorker() + " MB" : "");
    long free = workers.stream().filter(w -> fits(r, w)).count();
    String why = feasibleWhenIdle(r, workers) ? "busy" : "not enough capable workers in the cluster";
    return "waiting for " + need + "; " + free + " of " + workers.size() + " worker(s) free (" + why + ")";
  }

  private static boolean fits(Resources r, WorkerSlot w) {
    return w.freeCpus() >= r.getCpusPerWorker() && w.freeGpus() >= r.getGpusPerWorker()
        && (r.getMemoryMbPerWorker() == 0 || w.freeMemoryMb() >= r.getMemoryMbPerWorker());
  }
}

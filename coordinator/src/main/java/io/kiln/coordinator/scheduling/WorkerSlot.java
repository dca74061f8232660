package io.kiln.coordinator.scheduling;

import java.util.Set;

/** What the scheduler knows of one worker: its capacity and the jobs holding part of it. */
public record WorkerSlot(String workerId, String address, int cpus, long memoryMb, int gpus,
                         int usedCpus, long usedMemoryMb, int usedGpus, Set<String> jobIds) {
  public int freeCpus() {
    return cpus - usedCpus;
  }

  public long freeMemoryMb() {
    return memoryMb - usedMemoryMb;
  }

  public int freeGpus() {
    return gpus - usedGpus;
  }
}

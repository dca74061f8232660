package io.kiln.coordinator.scheduling;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.protocol.proto.Resources;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PlacementTest {
  static WorkerSlot slot(String id, int cpus, int used, int gpus) {
    return new WorkerSlot(id, "addr-" + id, cpus, 4096, gpus, used, 0, 0, Set.of());
  }

  @Test
  void placesOneRankPerWorkerPreferringTheMostFreeCpus() {
    var workers = List.of(slot("a", 4, 3, 0), slot("b", 4, 0, 0), slot("c", 4, 1, 0));
    assertEquals(Optional.of(List.of("b", "c")), Placement.place(Resources.newBuilder().setWorkers(2).setCpusPerWorker(1).build(), workers));
  }

  @Test
  void waitsWhenNotEnoughFreeWorkersAndExplainsWhy() {
    var workers = List.of(slot("a", 1, 1, 0), slot("b", 1, 0, 0));
    Resources two = Resources.newBuilder().setWorkers(2).build();
    assertTrue(Placement.place(two, workers).isEmpty());
    assertTrue(Placement.feasibleWhenIdle(two, workers));
    assertTrue(Placement.waitingReason(two, workers).contains("1 of 2 worker(s) free (busy)"), Placement.waitingReason(two, workers));
  }

  @Test
  void gpuRequestsNeedGpuWorkers() {
    var workers = List.of(slot("a", 8, 0, 0), slot("b", 8, 0, 1));
    Resources gpu = Resources.newBuilder().setWorkers(1).setGpusPerWorker(1).build();
    assertEquals(Optional.of(List.of("b")), Placement.place(gpu, workers));
    Resources twoGpus = Resources.newBuilder().setWorkers(2).setGpusPerWorker(1).build();
    assertFalse(Placement.feasibleWhenIdle(twoGpus, workers));
    assertTrue(Placement.waitingReason(twoGpus, workers).contains("not enough capable workers"));
  }

  @Test
  void defaultsToOneWorkerWithOneCpu() {
    assertEquals(Optional.of(List.of("a")), Placement.place(Resources.getDefaultInstance(), List.of(slot("a", 1, 0, 0))));
    assertTrue(Placement.place(Resources.getDefaultInstance(), List.of()).isEmpty());
  }
}

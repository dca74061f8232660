package io.kiln.worker.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.StopSignal;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** Which tasks a worker's next actor system adopts, and that a recent final report is sent again. */
class TaskRegistryTest {
  final TaskRegistry registry = new TaskRegistry(() -> true);

  TaskRegistry.LiveTask register(String taskId, List<TaskReport> sink) {
    TaskEvents events = new TaskEvents("job-1", taskId, "worker-1", sink::add);
    StopSignal stop = new StopSignal();
    return registry.register(TaskAssignment.newBuilder().setJobId("job-1").setTaskId(taskId).build(), events, stop,
        new GroupRendezvous(events, stop));
  }

  @Test
  void aRunningTaskAndOneThatJustEndedAreAdoptedAndTheFinalReportIsSentAgainOnAttach() {
    List<TaskReport> oldCoordinator = new CopyOnWriteArrayList<>();
    TaskRegistry.LiveTask running = register("t-running", oldCoordinator);
    TaskRegistry.LiveTask ended = register("t-ended", oldCoordinator);
    ended.events.completed("file:/m/", Map.of("test_accuracy", 0.9));
    ended.finished();
    assertEquals(1, oldCoordinator.stream().filter(TaskReport::hasCompleted).count());

    List<TaskRegistry.LiveTask> adopted = registry.running();
    assertEquals(2, adopted.size());
    assertTrue(adopted.contains(running) && adopted.contains(ended));
    assertTrue(ended.events.isDetached(), "the ended task holds its final report for the next coordinator");
    assertFalse(running.events.isDetached(), "a running task is detached when its actor system goes down");

    List<TaskReport> newCoordinator = new CopyOnWriteArrayList<>();
    ended.events.attach(newCoordinator::add);
    assertEquals(1, newCoordinator.size());
    assertEquals("file:/m/", newCoordinator.get(0).getCompleted().getModelUri());
  }

  @Test
  void aTaskThatEndedLongAgoIsForgotten() {
    TaskRegistry.LiveTask ended = register("t-old", new CopyOnWriteArrayList<>());
    ended.events.failed("boom");
    ended.finished();
    ended.finishedAt = System.nanoTime() - TaskRegistry.FINISHED_GRACE.toNanos() - 1;
    registry.forgetOldFinished();
    assertTrue(registry.running().isEmpty());
  }
}

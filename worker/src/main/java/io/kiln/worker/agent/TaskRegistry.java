package io.kiln.worker.agent;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.StopSignal;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * The tasks running in this worker process, outliving its actor systems. When the coordinator goes
 * away the worker starts a fresh actor system to join the new one; its tasks keep training (their
 * data plane does not need the coordinator), hold their reports, and are adopted by the new agent,
 * which the restarted coordinator then re-attaches to their jobs.
 */
public final class TaskRegistry {

  /** A running task: what its actor needs to relay commands to it and to learn when it ends. */
  public static final class LiveTask {
    final TaskAssignment assignment;
    final TaskEvents events;
    final StopSignal stop;
    final GroupRendezvous rendezvous;
    /** Called once by the task's thread when it ends; the current owner's actor points it at itself. */
    volatile Runnable onFinished = () -> {};
    volatile boolean done;

    LiveTask(TaskAssignment assignment, TaskEvents events, StopSignal stop, GroupRendezvous rendezvous) {
      this.assignment = assignment;
      this.events = events;
      this.stop = stop;
      this.rendezvous = rendezvous;
    }

    public TaskAssignment assignment() {
      return assignment;
    }

    synchronized void finished() {
      done = true;
      onFinished.run();
    }

    /** Points the end-of-task callback at a new owner (runs it at once if the task already ended). */
    synchronized void ownedBy(Runnable callback) {
      onFinished = callback;
      if (done) callback.run();
    }
  }

  private final ConcurrentHashMap<String, LiveTask> tasks = new ConcurrentHashMap<>();
  private final Supplier<Boolean> keepOnRestart;

  /** @param keepOnRestart whether tasks outlive the actor system going down now (asked at that time) */
  public TaskRegistry(Supplier<Boolean> keepOnRestart) {
    this.keepOnRestart = keepOnRestart;
  }

  /** A registry whose tasks stop with their actor system (tests, single-system use). */
  public static TaskRegistry stopWithSystem() {
    return new TaskRegistry(() -> false);
  }

  LiveTask register(TaskAssignment a, TaskEvents events, StopSignal stop, GroupRendezvous rendezvous) {
    LiveTask t = new LiveTask(a, events, stop, rendezvous);
    tasks.put(a.getTaskId(), t);
    return t;
  }

  void remove(String taskId) {
    tasks.remove(taskId);
  }

  /**
   * Tasks for a new agent to adopt: those still running, and those that ended while no coordinator
   * listened (their final report is held until the restarted coordinator re-attaches them).
   */
  List<LiveTask> running() {
    return tasks.values().stream().filter(t -> !t.done || t.events.isDetached()).toList();
  }

  boolean keepOnRestart() {
    return keepOnRestart.get();
  }
}

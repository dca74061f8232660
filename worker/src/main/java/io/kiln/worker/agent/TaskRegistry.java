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
    /** When the task ended (System.nanoTime), for {@link #FINISHED_GRACE}. */
    volatile long finishedAt;

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
      finishedAt = System.nanoTime();
      done = true;
      onFinished.run();
    }

    /** Points the end-of-task callback at a new owner (runs it at once if the task already ended). */
    synchronized void ownedBy(Runnable callback) {
      onFinished = callback;
      if (done) callback.run();
    }
  }

  /**
   * How long an ended task is remembered: longer than the coordinator's death takes to notice
   * (heartbeat pause + downing, about 8 s), so that its final report can be sent again.
   */
  static final java.time.Duration FINISHED_GRACE = java.time.Duration.ofSeconds(30);

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
    long now = System.nanoTime();
    tasks.values().removeIf(t -> t.done && !t.events.isDetached() && now - t.finishedAt > FINISHED_GRACE.toNanos());
    // Ended within the grace: its final report may have gone to a coordinator that had just died
    // (a worker notices that seconds later), so it is held and sent again to the restarted one.
    for (LiveTask t : tasks.values()) if (t.done && !t.events.isDetached()) t.events.detachAfterFinish();
    return tasks.values().stream().filter(t -> !t.done || t.events.isDetached()).toList();
  }

  /** Forgets tasks that ended longer than {@link #FINISHED_GRACE} ago (called as tasks end). */
  void forgetOldFinished() {
    long now = System.nanoTime();
    tasks.values().removeIf(t -> t.done && !t.events.isDetached() && now - t.finishedAt > FINISHED_GRACE.toNanos());
  }

  boolean keepOnRestart() {
    return keepOnRestart.get();
  }
}

package io.kiln.worker.task;

import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.training.StopSignal;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.TimeoutException;

/**
 * How a rank of a distributed task finds its peers: it tells the coordinator where its data plane
 * listens ({@link TaskRendezvous}) and waits until the coordinator, having heard from every member,
 * answers with the group ({@link GroupSpec}: every rank's address and task id, the backend, NCCL's
 * id, the rank whose state everyone starts from).
 *
 * <p>Elastic jobs meet here again whenever their members change: a rank whose collective failed, or
 * that the coordinator asked to regroup ({@link #requestRegroup}), joins again and waits for a group
 * of a newer generation than the one it left. The task's thread calls {@link #join}; the task actor
 * calls {@link #formed} and {@link #requestRegroup} as the coordinator's commands arrive.
 */
public final class GroupRendezvous {
  private final TaskEvents events;
  private final StopSignal stop;
  /** The newest group the coordinator sent (generations only grow). */
  private final AtomicReference<GroupSpec> latest = new AtomicReference<>();
  /** Generation the coordinator asked this rank to leave (0: none asked). */
  private final AtomicInteger regroupFrom = new AtomicInteger();
  private volatile String regroupReason = "";
  private volatile java.util.function.IntConsumer abortHook;

  public GroupRendezvous(TaskEvents events, StopSignal stop) {
    this.events = events;
    this.stop = stop;
  }

  /**
   * Announces this rank and blocks until a group of a generation newer than
   * {@code mine.from_generation} is formed, the task is stopped or time runs out.
   */
  public GroupSpec join(TaskRendezvous mine, Duration timeout) throws Exception {
    events.rendezvous(mine);
    long deadline = System.nanoTime() + timeout.toNanos();
    synchronized (this) {
      while (true) {
        stop.check();
        GroupSpec g = latest.get();
        if (g != null && g.getGeneration() > mine.getFromGeneration()) return g;
        if (System.nanoTime() > deadline) {
          throw new TimeoutException("the job's group was not formed within " + timeout.toSeconds()
              + " s (the other ranks did not all reach the rendezvous)");
        }
        wait(200);
      }
    }
  }

  public synchronized void formed(GroupSpec spec) {
    latest.accumulateAndGet(spec, (old, now) -> old == null || now.getGeneration() > old.getGeneration() ? now : old);
    notifyAll();
  }

  /**
   * The coordinator asks the rank to leave {@code generation}: at its next step boundary, or at
   * once when {@code urgent} (a member was lost: the abort hook fails a collective in flight).
   */
  public void requestRegroup(int generation, String reason, boolean urgent) {
    regroupReason = reason == null ? "" : reason;
    regroupFrom.accumulateAndGet(generation, Math::max);
    java.util.function.IntConsumer hook = abortHook;
    if (urgent && hook != null) hook.accept(generation);
  }

  /** Called (on the actor's thread) with the generation to abort when an urgent regroup arrives. */
  public void onUrgentRegroup(java.util.function.IntConsumer hook) {
    this.abortHook = hook;
  }

  /** True when the coordinator asked this rank to leave {@code generation} (or a later one). */
  public boolean regroupRequested(int generation) {
    return regroupFrom.get() >= generation;
  }

  public String regroupReason() {
    return regroupReason;
  }
}

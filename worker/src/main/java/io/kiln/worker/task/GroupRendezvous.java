package io.kiln.worker.task;

import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.training.StopSignal;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * How a rank of a distributed task finds its peers: it tells the coordinator where its data plane
 * listens ({@link TaskRendezvous}) and waits until the coordinator, having heard from every rank,
 * answers with the group ({@link GroupSpec}: every rank's address, the backend, NCCL's id).
 *
 * <p>The task's thread calls {@link #join}; the task actor calls {@link #formed} when the
 * {@code FormGroup} command arrives.
 */
public final class GroupRendezvous {
  private final TaskEvents events;
  private final StopSignal stop;
  private final CompletableFuture<GroupSpec> group = new CompletableFuture<>();

  public GroupRendezvous(TaskEvents events, StopSignal stop) {
    this.events = events;
    this.stop = stop;
  }

  /** Announces this rank and blocks until its group is formed, the task is stopped or time runs out. */
  public GroupSpec join(TaskRendezvous mine, Duration timeout) throws Exception {
    events.rendezvous(mine);
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      stop.check();
      try {
        return group.get(200, TimeUnit.MILLISECONDS);
      } catch (TimeoutException e) {
        if (System.nanoTime() > deadline) {
          throw new TimeoutException("the other ranks of the job did not all reach the rendezvous within "
              + timeout.toSeconds() + " s");
        }
      } catch (ExecutionException e) {
        throw new IllegalStateException(e.getCause());
      }
    }
  }

  public void formed(GroupSpec spec) {
    group.complete(spec);
  }
}

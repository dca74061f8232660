package io.kiln.worker.task;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.training.GradientSync;

/**
 * Makes the {@link GradientSync} for a task from its assignment (rank, world size, collective).
 * The worker agent is given one; {@link CollectiveGradientSyncFactory} serves data-parallel tasks.
 */
@FunctionalInterface
public interface GradientSyncFactory {

  /**
   * Called on the task's thread before training starts; may block (to find and connect to peers
   * through {@code rendezvous}).
   */
  GradientSync create(TaskAssignment assignment, GroupRendezvous rendezvous) throws Exception;

  /** {@link GradientSync#NONE} for world_size 1; world_size > 1 fails with a clear reason. */
  GradientSyncFactory SINGLE_RANK_ONLY = (a, r) -> {
    if (a.getWorldSize() <= 1) return GradientSync.NONE;
    throw new UnsupportedOperationException("data-parallel training (world_size " + a.getWorldSize()
        + ") is not available on this worker: no collective is installed");
  };
}

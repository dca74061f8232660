package io.kiln.worker.task;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.training.GradientSync;

/**
 * Makes the {@link GradientSync} for a task from its assignment (rank, world size, collective).
 * The worker agent is given one; the default serves single-rank tasks only. Data-parallel
 * collectives (ring, NCCL) plug in here without touching the training loop.
 */
@FunctionalInterface
public interface GradientSyncFactory {

  /** Called on the task's thread before training starts; may block (e.g. to connect to peers). */
  GradientSync create(TaskAssignment assignment) throws Exception;

  /** {@link GradientSync#NONE} for world_size 1; world_size > 1 fails with a clear reason. */
  GradientSyncFactory SINGLE_RANK_ONLY = a -> {
    if (a.getWorldSize() <= 1) return GradientSync.NONE;
    throw new UnsupportedOperationException("data-parallel training (world_size " + a.getWorldSize()
        + ") is not available on this worker yet: no collective is installed");
  };
}

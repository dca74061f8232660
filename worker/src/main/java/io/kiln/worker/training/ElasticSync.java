package io.kiln.worker.training;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * A {@link GradientSync} whose group may change between steps (elastic training). When a peer
 * dies, {@link #sync} throws {@link GroupChangedException}; the training loop then drops the
 * step's gradients (its optimizer has not stepped), calls {@link #regroup} with where it stands,
 * and continues in the new generation from the state of its {@link View#sourceRank()}, which
 * {@link #broadcastState} copies to every rank.
 *
 * <p>Why no completed step is lost: a step is complete on a rank once its all-reduce returned.
 * Ranks that completed step s hold identical state; ranks that did not hold the state of step s-1.
 * The coordinator makes a rank with the highest completed step the source of the next generation.
 */
public interface ElasticSync extends GradientSync {

  /** This rank's place in the current generation. */
  record View(int generation, int rank, int worldSize, int sourceRank) {}

  /** Where a rank's training stands: global steps done, 1-based epoch, samples of it consumed. */
  record StepState(long completedStep, int epoch, long epochOffset) {}

  View view();

  /** True when the coordinator asked this rank to regroup (a rank joins or was lost). */
  boolean regroupRequested();

  /**
   * Leaves the current generation and blocks until the next one is formed.
   *
   * @param state this rank's state ({@code completedStep} -1 when it has none yet)
   * @param suspects task ids this rank saw fail (may be empty)
   * @throws Exception if this rank was dropped from the job, the task stopped or no group formed in time
   */
  View regroup(StepState state, String reason, List<String> suspects) throws Exception;

  /** Copies {@code bytes} bytes of {@code buf} from the source rank to every rank of the generation. */
  void broadcastState(ByteBuffer buf, int bytes) throws GroupChangedException;
}
